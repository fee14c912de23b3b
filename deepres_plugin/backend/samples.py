"""Training samples for the dense DeepRes model (DESIGN.md §4.2).

One job = one structure in a random orientation, split into 1–4 spatial regions, each low-passed
at its own resolution with the paper's filter (several assignments per orientation); optional
Gaussian noise of random colour (white, low-passed, B-shaped) relative to the map's maximum; on
some maps a global B-factor (sharpening or blurring, inside the Nyquist sphere); then the map is
masked as Xmipp feeds its network: map × (a user-like mask dilated by one voxel), hard or soft.
Patches carry per-voxel labels and weights (1 within ``mask_radius`` of an atom, 0 elsewhere).

The label is the resolution of the ideal filtered map that the region resembles (paper,
Discussion): its own resolution, or with a B-factor the resolution whose ideal map has the same
power-weighted mean s² (the same sharpness ‖∇x‖²/‖x‖²), see :func:`effective_resolution`."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import filters
from . import simulate as sim

MANIFEST_ENV = "DEEPRES_DATA"
SHARPEN_MAX_LN_GAIN = 7.0  # training sharpening boosts Nyquist by at most e^7 (B = −112 Å² at 1 Å/px)


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
    mask_radius: float = 3.0  # labelled voxels: within this distance of an atom (Å)
    noise_colour: bool = False  # noise white, low-passed or B-shaped (else always white)
    global_b_fraction: float = 0.0  # maps given a global B-factor (label: effective resolution)
    global_b_beta: tuple = (-2.5, 3.5)  # B = β·4·R² (β = −ln gain at the best region's R)
    mask_input: bool = False  # the net sees map × (mask dilated by one voxel), as Xmipp's
    mask_min: float = 2.5  # Å: distance from the atoms of the training maps' masks ...
    mask_max: float = 9.0  # ... drawn uniformly in [mask_min, mask_max]
    soft_fraction: float = 0.5  # masks with a cosine edge (2–8 Å wide)

    def __post_init__(self):
        if self.noise_ref not in ("map", "local"):
            raise ValueError(f"noise_ref must be 'map' or 'local', not {self.noise_ref!r}")
        self.global_b_beta = tuple(self.global_b_beta)

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
        spectrum = _power_spectrum(dens.sum(0), r.sampling) if r.global_b_fraction else None
        xs, ys, ns = [], [], []
        for _ in range(r.assignments):
            res = rng.uniform(lo, hi, size=k)
            vol = sim.filter_groups(dens, r.sampling, res)
            vol, sd = self._add_noise(vol, label, k, rng)
            labels = res
            if spectrum is not None and rng.random() < r.global_b_fraction:
                beta = rng.uniform(*r.global_b_beta)
                bfac = float(beta * 4.0 * res.min() ** 2)  # the gain at the best cut-off
                bfac = max(bfac, -SHARPEN_MAX_LN_GAIN * 16.0 * r.sampling ** 2)
                vol = filters.fourier_filter(vol, r.sampling, 2.0 * r.sampling, bfac)
                labels = np.clip(effective_resolution(spectrum, res, bfac, r.sampling), lo, hi)
                sd = 0.0  # no longer white: the SD says nothing useful
            if r.mask_input:
                vol = vol * self._input_mask(dist, rng)
            scale = max(float(np.abs(vol).max()), 1e-12)
            vol /= scale
            truth = np.asarray(labels, np.float32)[label]
            x, y = self._patches(vol, truth, mask, rng)
            xs.append(x)
            ys.append(y)
            ns.append(np.full((len(x), 1), sd / scale, np.float32))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)

    def _input_mask(self, dist, rng):
        """What the net sees of the map: a user-like mask (atoms within r Å, r random; hard, or
        with a cosine edge that the binarised mask cuts at 0.5) dilated by one voxel."""
        r = self.r
        radius = rng.uniform(r.mask_min, r.mask_max)
        if rng.random() < r.soft_fraction:
            width = rng.uniform(2.0, 8.0)
            soft = 0.5 * (1.0 + np.cos(np.pi * np.clip((dist - radius) / width, 0.0, 1.0)))
            binary = soft > 0.5
            return (soft * ndimage.binary_dilation(binary)).astype(np.float32)
        return ndimage.binary_dilation(dist <= radius).astype(np.float32)

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
        noise = rng.standard_normal(vol.shape).astype(np.float32)
        colour = rng.integers(3) if r.noise_colour else 0
        if colour:  # post-processed maps: noise low-passed or B-weighted, not white
            lo, hi = r.res_bounds()
            if colour == 1:
                noise = filters.fourier_filter(noise, r.sampling, rng.uniform(lo, hi))
            else:
                noise = filters.fourier_filter(noise, r.sampling, None,
                                               float(rng.uniform(0.3, 3.0) * 4 * lo * lo))
            noise /= max(float(noise.std()), 1e-12)
            sd = 0.0 if r.noise_ref == "map" else sd  # coloured: not the white SD a net expects
        return vol + level * ref * noise, sd

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


def _power_spectrum(density: np.ndarray, sampling: float):
    """(s² per shell, power per shell) of an unfiltered density, the alias blur removed."""
    s2 = filters.frequency_squared(density.shape, sampling)
    p = np.abs(filters.sfft.rfftn(density, workers=filters.WORKERS)) ** 2
    p *= np.exp(sim.ALIAS_BLUR_PER_PX2 * sampling ** 2 * s2 / 2.0)
    p[..., 1:] *= 2.0  # rfftn keeps half of the x axis
    nyq2 = (0.5 / sampling) ** 2
    keep = s2 <= nyq2
    edges = np.linspace(0.0, nyq2, 257)
    idx = np.searchsorted(edges, s2[keep], side="right") - 1
    power = np.bincount(idx, p[keep], minlength=256)[:256]
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres, power


def effective_resolution(spectrum, resolutions, bfactor: float, sampling: float):
    """Resolution (Å) of the ideal filtered map with the same amplitude-weighted mean s² as the
    map low-passed at each of ``resolutions`` and then B-weighted exp(−B s²/4): sharpening
    (B < 0) gives a better, blurring a worse resolution, graded. Amplitude weights (not power)
    keep the response moderate: a 3.5 Å map reads 3.07 / 2.88 Å at B = −60 / −100 (power
    weights: 2.5 / 2.3 Å, on the floor). ``spectrum``: (s², power) of the unfiltered density."""
    s2, power = spectrum
    s = np.sqrt(s2)
    amplitude = np.sqrt(power)

    def moment(res, bfac):
        g = filters.raised_cosine(s, sampling, res) * np.exp(-bfac * s2 / 4.0) * amplitude
        return float((g * s2).sum() / max(g.sum(), 1e-30))

    grid = np.geomspace(2.0 * sampling, 60.0 * sampling, 300)
    ideal = np.array([moment(g, 0.0) for g in grid])  # decreasing with resolution
    targets = np.array([moment(res, bfactor) for res in np.atleast_1d(resolutions)])
    return np.interp(-targets, -ideal, grid).astype(np.float32)
