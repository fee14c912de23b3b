"""Calibration of a dense model so that a region of true resolution t reads t (median).

Trained per voxel with a Huber loss in Å, the network answers roughly the expected resolution
*given the box*. Where a box holds little signal (noise, 7–13 Å) the uncertainty is larger on the
bad side, so that answer leans to worse values: on noisy maps a 7 Å region read ~7.9 Å. A
local-resolution map should instead be unbiased *given the truth*. Classical (inverse)
calibration does that: on simulated ideal maps (atom B = 0, as the paper's test maps) of the
`train` structures, with the training recipe's resolutions and noise, tabulate
m(u, t) = median answer at noise-to-signal ratio u (noise SD / box RMS, what the net sees) and
truth t, make it increasing in t, and map an answer p to m⁻¹(u, ·)(p), interpolating linearly
between the tabulated u. Models without the noise input (the default since the paper-terms
models) have one effective row, u = 0: a monotone map of the answer, no noise measurement. Medians are unchanged by monotone maps, so per u the calibrated median
at truth t is t; a region mixing several u keeps that. The table lives in the model card."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import numpy as np
from scipy import ndimage

from . import models
from .config import CALIBRATION_MAPS
from .registry import Calibration  # the table, stored in the model card
from .samples import SampleMaker, SampleRecipe, manifest
from .volume import InputError

log = logging.getLogger(__name__)

NSR_NODES = (0.0, 0.1, 0.25, 0.45, 0.7)
STEP = 1.0  # Å between tabulated true resolutions (0.5 Å: noisier table, worse on `val`)
MIN_COUNT = 200  # voxels for a table entry; sparser entries are interpolated along t
MAPS = CALIBRATION_MAPS  # simulated maps (16 patches each) by default
VOXEL_FRACTION = 0.25  # of the labelled voxels of each patch kept for the fit (memory)


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
    maker = SampleMaker(replace(recipe, bfactor_max=0.0, global_b_fraction=0.0), paths)
    uses_noise = len(net.inputs) > 1  # a model without the noise input: one row, u = 0
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
        u = (np.stack([nsr(float(n[i, 0]), x[i, ..., 0], 2 * h + 1) for i in range(len(x))])
             if uses_noise else np.zeros(p.shape, np.float32))
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
              command: str = "", mask_input: bool = False) -> Calibration:
    """Fit the calibration of a trained dense model and store it in its card (rewritten
    atomically). ``structures``: model files (default: the `train` split of the data kit).
    ``mask_input``: from now on feed the model map × dilated mask (recorded in the card's
    recipe; for a model trained without it), and calibrate on such inputs."""
    if n_maps < 1:
        raise InputError("calibration needs at least one map")
    paths = list(structures) if structures else [r["path"] for r in manifest("train")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or not paths:
        raise InputError(f"structure file(s) not found: {', '.join(missing[:3]) or 'none given'}")
    net, card = models.load_dense(name_or_path)
    try:
        recipe = SampleRecipe(**card.extra["recipe"])
        if mask_input and not recipe.mask_input:
            recipe.mask_input = card.extra["recipe"]["mask_input"] = True
            card.extra["mask_input_since_calibration"] = True
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
