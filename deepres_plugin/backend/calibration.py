"""Calibration of a dense model so that a region of true resolution t reads t (median).

Trained per voxel with a Huber loss in Å, the network answers roughly the expected resolution
*given the box*. Where a box holds little signal (noise, 7–13 Å) the uncertainty is larger on the
bad side, so that answer leans to worse values: on noisy maps a 7 Å region read ~7.9 Å. A
local-resolution map should instead be unbiased *given the truth*. Classical (inverse)
calibration does that: on simulated ideal maps (atom B = 0, as the paper's test maps) of the
`train` structures, with the training recipe's resolutions and noise, tabulate
m(u, t) = median answer at noise-to-signal ratio u (noise SD / box RMS, what the net sees) and
truth t, make it increasing in t, and map an answer p to m⁻¹(u, ·)(p), interpolating linearly
between the tabulated u. Medians are unchanged by monotone maps, so per u the calibrated median
at truth t is t; a region mixing several u keeps that. The table lives in the model card."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .volume import InputError

log = logging.getLogger(__name__)

NSR_NODES = (0.0, 0.1, 0.25, 0.45, 0.7)
STEP = 1.0  # Å between tabulated true resolutions (0.5 Å: noisier table, worse on `val`)
MIN_COUNT = 200  # voxels for a table entry; sparser entries are interpolated along t
MAPS = 200  # simulated maps (16 patches each) by default
VOXEL_FRACTION = 0.25  # of the labelled voxels of each patch kept for the fit (memory)


@dataclass
class Calibration:
    nsr_nodes: np.ndarray  # (J,) noise-to-signal ratios, increasing, first 0
    truth: np.ndarray  # (K,) true resolutions (Å), increasing
    median: np.ndarray  # (J, K) median raw answer, strictly increasing along K

    def apply(self, pred: np.ndarray, nsr: np.ndarray | float) -> np.ndarray:
        """Calibrated resolution (Å) for raw answers ``pred`` at noise-to-signal ``nsr``."""
        pred = np.asarray(pred, np.float32)
        nodes = self.nsr_nodes
        u = np.clip(np.broadcast_to(np.asarray(nsr, np.float32), pred.shape), 0, nodes[-1])
        j = np.clip(np.searchsorted(nodes, u, side="right") - 1, 0, len(nodes) - 2)
        w = (u - nodes[j]) / (nodes[j + 1] - nodes[j])
        out = np.zeros(pred.shape, np.float32)
        for jj in range(len(nodes)):  # J table rows, each vectorised over the voxels
            weight = np.where(j == jj, 1 - w, 0) + np.where(j + 1 == jj, w, 0)
            if not weight.any():
                continue
            out += weight * self.inverse(jj, pred)
        return out

    def inverse(self, row: int, pred: np.ndarray) -> np.ndarray:
        """m⁻¹ of one table row; beyond the table the answer moves 1:1 with ``pred``."""
        m, t = self.median[row], self.truth
        g = np.interp(pred, m, t)
        g = np.where(pred < m[0], t[0] + (pred - m[0]), g)
        return np.where(pred > m[-1], t[-1] + (pred - m[-1]), g).astype(np.float32)

    def to_dict(self) -> dict:
        return {"nsr_nodes": [float(v) for v in self.nsr_nodes],
                "truth": [float(v) for v in self.truth],
                "median": [[round(float(v), 4) for v in row] for row in self.median]}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Read and check a card's ``calibration`` entry (InputError when malformed)."""
        try:
            nodes = np.asarray(d["nsr_nodes"], np.float64)
            truth = np.asarray(d["truth"], np.float64)
            med = np.asarray(d["median"], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model card calibration is invalid ({exc})") from None
        ok = (nodes.ndim == 1 and len(nodes) >= 2 and truth.ndim == 1 and len(truth) >= 2
              and med.shape == (len(nodes), len(truth)) and np.all(np.isfinite(med))
              and np.all(np.diff(nodes) > 0) and np.all(np.diff(truth) > 0)
              and np.all(np.diff(med, axis=1) > 0))
        if not ok:
            raise InputError("model card calibration is invalid (table shapes or order)")
        return cls(nodes, truth, med)


def box_rms(x: np.ndarray, box: int = 13) -> np.ndarray:
    """RMS over the box³ around each voxel whose box lies inside ``x`` ('valid', as the dense
    model's normaliser): shape ``x.shape − (box − 1)``."""
    h = box // 2
    mean_sq = ndimage.uniform_filter(np.asarray(x, np.float32) ** 2, box, mode="constant")
    inner = tuple(slice(h, n - h) for n in x.shape)
    return np.sqrt(np.maximum(mean_sq[inner], 0.0))


def nsr(noise: float, x: np.ndarray, box: int = 13) -> np.ndarray:
    """Noise-to-signal ratio of each box: noise SD / box RMS ('valid' output grid)."""
    return noise / np.maximum(box_rms(x, box), 1e-6)


def _isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators; K ≈ 20 bins)."""
    blocks = []  # [mean, weight, length]
    for yi, wi in zip(y, w):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(n, m) for m, _, n in blocks])


def fit(pred, truth, nsr_values, lo: float, hi: float, step: float = STEP,
        nodes=NSR_NODES, min_count: int = MIN_COUNT) -> Calibration:
    """Table of median answers per (noise-to-signal node, true-resolution bin); voxels go to
    the nearest node. Each row is made increasing (isotonic, weighted by counts, plus 1e-3 Å
    per bin so that it can be inverted); rows without enough voxels copy their neighbour."""
    pred, truth, u = (np.asarray(a, np.float64).ravel() for a in (pred, truth, nsr_values))
    nodes = np.asarray(nodes, np.float64)
    centres = np.arange(lo + step / 2, hi, step)
    K, J = len(centres), len(nodes)
    kb = np.clip(((truth - lo) / step).astype(np.int64), 0, K - 1)
    jb = np.clip(np.searchsorted((nodes[1:] + nodes[:-1]) / 2, u), 0, J - 1)
    key = jb * K + kb
    order = np.lexsort((pred, key))  # sorted by cell, then by answer: medians by position
    counts = np.bincount(key, minlength=J * K)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    mid = pred[order][np.minimum(starts + counts // 2, len(pred) - 1)]
    med = np.where(counts >= min_count, mid, np.nan).reshape(J, K)
    counts = counts.reshape(J, K)
    table = np.empty((J, K))
    filled = np.zeros(J, bool)
    for j in range(J):
        ok = ~np.isnan(med[j])
        if ok.sum() < 2:
            continue
        row = np.interp(centres, centres[ok], med[j][ok])
        table[j] = _isotonic(row, np.maximum(counts[j], 1)) + 1e-3 * np.arange(K)
        filled[j] = True
    if not filled.any():
        raise InputError("too few calibration voxels to fit any noise level")
    for j in range(J):  # rows without data: the nearest filled row
        if not filled[j]:
            table[j] = table[np.flatnonzero(filled)[np.argmin(np.abs(np.flatnonzero(filled) - j))]]
    return Calibration(nodes, centres, table)


def collect(net, recipe, paths: list[str], n_maps: int = MAPS, seed: int = 1,
            progress: bool = False):
    """Raw answers, truths and noise-to-signal ratios on ideal-atom (B = 0) training maps."""
    from dataclasses import replace

    from . import models
    from .samples import SampleMaker

    maker = SampleMaker(replace(recipe, bfactor_max=0.0), paths)
    rng = np.random.default_rng([seed, 424_242])
    h = recipe.halo
    preds, truths, ratios = [], [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_maps, desc="calibration", unit="map", leave=False)
    for _ in range(n_maps):
        x, y, n = maker.job(rng)
        p = np.asarray(net(models.model_inputs(net, x, n), training=False))[..., 0]
        u = np.stack([nsr(float(n[i, 0]), x[i, ..., 0], 2 * h + 1) for i in range(len(x))])
        keep = (y[..., 1] > 0) & (rng.random(p.shape) < VOXEL_FRACTION)
        preds.append(p[keep])
        truths.append(y[..., 0][keep])
        ratios.append(u[keep].astype(np.float32))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return np.concatenate(preds), np.concatenate(truths), np.concatenate(ratios)


def calibrate(name_or_path: str, n_maps: int = MAPS, seed: int = 1,
              structures: list[str] | None = None, progress: bool = False,
              command: str = "") -> Calibration:
    """Fit the calibration of a trained dense model and store it in its card (rewritten
    atomically). ``structures``: model files (default: the `train` split of the data kit)."""
    from . import models
    from .samples import SampleRecipe, manifest

    if n_maps < 1:
        raise InputError("calibration needs at least one map")
    paths = list(structures) if structures else [r["path"] for r in manifest("train")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or not paths:
        raise InputError(f"structure file(s) not found: {', '.join(missing[:3]) or 'none given'}")
    net, card = models.load_dense(name_or_path)
    try:
        recipe = SampleRecipe(**card.extra["recipe"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"model {name_or_path}: its card has no usable training recipe "
                         f"({exc})") from None
    t0 = time.perf_counter()
    pred, truth, u = collect(net, recipe, paths, n_maps, seed, progress)
    lo, hi = recipe.res_bounds()
    cal = fit(pred, truth, u, lo, hi, min_count=min(MIN_COUNT, max(10, pred.size // 500)))
    ids = sorted(os.path.basename(p).split(".")[0] for p in paths)
    card.extra["calibration"] = {
        **cal.to_dict(), "maps": n_maps, "seed": seed, "voxels": int(pred.size),
        "atom_bfactor": 0.0, "structures": ids, "seconds": round(time.perf_counter() - t0, 1),
        "command": command}
    models.write_card(models.weights_paths(name_or_path)[1], card)
    log.info("calibration of %s: %d voxels from %d maps", name_or_path, pred.size, n_maps)
    return cal
