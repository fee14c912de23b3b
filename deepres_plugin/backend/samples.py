"""Training samples for the dense DeepRes model (DESIGN.md §4.2).

One job = one structure in a random orientation, split into 1–4 spatial regions, each low-passed
at its own resolution (several assignments per orientation), optional noise relative to the local
signal, then patches with per-voxel labels (resolution of the nearest atom's region) and weights
(1 inside the molecular mask, 0 elsewhere)."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import simulate as sim

MANIFEST_ENV = "DEEPRES_DATA"


def data_dir() -> str:
    """../shared/data next to the repository, or $DEEPRES_DATA."""
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "data"))
    return os.environ.get(MANIFEST_ENV, default)


def manifest(split: str | None = None, root: str | None = None) -> list[dict]:
    """Rows of MANIFEST.csv (optionally one split) with an absolute ``path``."""
    root = root or data_dir()
    with open(os.path.join(root, "MANIFEST.csv"), newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if split is None or r["split"] == split]
    for r in rows:
        r["path"] = os.path.join(root, r["file"])
    return rows


@dataclass
class SampleRecipe:
    """How training maps are made; stored in the model card."""

    sampling: float = 1.0
    res_min: float = 2.5
    res_max: float = 13.0
    patch: int = 48
    halo: int = 6
    max_box: int = 96
    max_groups: int = 4
    assignments: int = 2  # resolution assignments per orientation
    patches_per_map: int = 8
    noise_max: float = 0.12  # largest noise SD, as a fraction of the reference maximum below
    noise_ref: str = "map"  # "map": the whole map's maximum; "local": each region's own
    clean_fraction: float = 0.2
    bfactor_max: float = 10.0  # atomic B jitter, Å²
    mask_radius: float = 3.0

    def __post_init__(self):
        if self.noise_ref not in ("map", "local"):
            raise ValueError(f"noise_ref must be 'map' or 'local', not {self.noise_ref!r}")

    def res_bounds(self) -> tuple[float, float]:
        return max(self.res_min, 2.0 * self.sampling), self.res_max


class SampleMaker:
    """Makes (inputs, labels) patch arrays from structure files; structures are cached."""

    def __init__(self, recipe: SampleRecipe, paths: list[str]):
        self.r = recipe
        self.paths = list(paths)
        self._cache: dict[str, tuple] = {}

    def _structure(self, path):
        if path not in self._cache:
            st = sim.load_structure(path)
            self._cache[path] = (st, sim.atom_table(st)[0])
        return self._cache[path]

    def job(self, rng: np.random.Generator, path: str | None = None):
        """Patches from one oriented structure: x (N, P, P, P, 1), y (N, Q, Q, Q, 2) with
        y[..., 0] = resolution label (Å), y[..., 1] = weight; Q = P − 2·halo; and n (N, 1), the
        SD of the noise added to each patch's map, in the units of x."""
        r = self.r
        path = path or self.paths[rng.integers(len(self.paths))]
        st, pos0 = self._structure(path)
        pos = (pos0 - pos0.mean(0)) @ sim.random_rotation(rng).T
        keep, shape = self._crop(pos, rng)
        centre = np.array(shape[::-1]) * r.sampling / 2.0
        k = int(rng.integers(1, r.max_groups + 1))
        seeds = pos[keep][rng.choice(keep.sum(), size=min(k, int(keep.sum())), replace=False)]
        groups = np.argmin(((pos[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
        k = len(seeds)
        groups[~keep] = -1
        pos_box = pos - (pos[keep].max(0) + pos[keep].min(0)) / 2.0 + centre
        dens = sim.atom_densities(st, pos_box, groups, k, shape, r.sampling,
                                  float(rng.uniform(0, r.bfactor_max)))
        dist, label = sim.nearest_atom_maps(pos_box[keep], groups[keep], shape, r.sampling)
        mask = dist <= r.mask_radius
        lo, hi = r.res_bounds()
        xs, ys, ns = [], [], []
        for _ in range(r.assignments):
            res = rng.uniform(lo, hi, size=k)
            vol = sim.filter_groups(dens, r.sampling, res)
            vol, sd = self._add_noise(vol, label, k, rng)
            scale = max(float(np.abs(vol).max()), 1e-12)
            vol /= scale
            truth = res.astype(np.float32)[label]
            x, y = self._patches(vol, truth, mask, rng)
            xs.append(x)
            ys.append(y)
            ns.append(np.full((len(x), 1), sd / scale, np.float32))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)

    def _crop(self, pos, rng):
        """Atoms kept and box shape; large structures are cut to a max_box³ cube."""
        r = self.r
        shape = sim.box_for(pos, r.sampling, padding=r.halo * r.sampling + 4.0)
        if max(shape) <= r.max_box:
            return np.ones(len(pos), bool), shape
        half = r.max_box * r.sampling / 2.0 - 6.0
        c = pos[rng.integers(len(pos))]
        keep = np.all(np.abs(pos - c) <= half, axis=1)
        return keep, (r.max_box,) * 3

    def _add_noise(self, vol, label, k, rng):
        """Gaussian noise. ``noise_ref="map"``: SD a fraction of the whole map's maximum, as in
        the paper's test maps (blurred regions, having lower peaks, get the worse SNR);
        ``"local"``: a fraction of each region's own maximum (smoothly blended), so that the
        amount of noise tells nothing about the resolution. Returns (map, noise SD), the SD
        being the median over voxels when it varies."""
        r = self.r
        if r.noise_max <= 0 or rng.random() < r.clean_fraction:
            return vol, 0.0
        level = rng.uniform(0, r.noise_max)
        if r.noise_ref == "map":
            ref = float(vol.max())
            sd = level * ref
        else:
            peaks = ndimage.maximum(vol, labels=label + 1, index=np.arange(1, k + 1))
            ref = ndimage.gaussian_filter(np.asarray(peaks, np.float32)[label], 3.0 / r.sampling)
            sd = level * float(np.median(ref))
        return vol + (level * ref * rng.standard_normal(vol.shape)).astype(np.float32), sd

    def _patches(self, vol, truth, mask, rng):
        r = self.r
        h, q = r.patch // 2, r.patch - 2 * r.halo
        cand = np.argwhere(mask)
        centres = cand[rng.choice(len(cand), size=r.patches_per_map, replace=len(cand) <
                                  r.patches_per_map)]
        vp = np.pad(vol, h)
        tp = np.pad(truth, h)
        mp = np.pad(mask, h)
        x = np.empty((len(centres), r.patch, r.patch, r.patch, 1), np.float32)
        y = np.empty((len(centres), q, q, q, 2), np.float32)
        for i, (cz, cy, cx) in enumerate(centres):  # a few patches per map, not voxels
            sl = np.s_[cz:cz + r.patch, cy:cy + r.patch, cx:cx + r.patch]
            x[i, ..., 0] = vp[sl]
            inner = np.s_[r.halo:r.halo + q, r.halo:r.halo + q, r.halo:r.halo + q]
            y[i, ..., 0] = tp[sl][inner]
            y[i, ..., 1] = mp[sl][inner]
        y[..., 0] = np.where(y[..., 1] > 0, y[..., 0], 0.5 * (r.res_min + r.res_max))
        return x, y
