"""Uncertainty of a local-resolution map (``deepres estimate --uncertainty``).

Spread: test-time augmentation. The whole estimate (``--model auto`` included) is rerun on K−1
symmetric copies of the map and mask (axis permutations and flips of the grid: a resolution map
does not change under them, the 3-D CNN is not exactly invariant), each answer is brought back
to the input frame, and SD = the SD over the K answers (the plain estimate is copy 1 and stays
the reported resolution). The raw SD is too small, and misses errors that all copies share
(error / SD is heavy-tailed: ±2·c·SD covered 90 %, not 95 %, on train maps), so the spread is ``scale · √(SD² + (floor · R)²)`` (R: the estimate), ``scale`` and ``floor``
fitted on simulated maps of `train` structures so that ±1 spread covers 68 % and ±2 spread 95 %
of the voxels' truth (``benchmarks/uncertainty.py --fit``; stored in weights/uncertainty.json).

Out of distribution (OOD): masked voxels at the clamp (the model's best or worst value, or the
Nyquist limit), and voxels whose 13³ box, as the net sees it, lies outside the 0.1–99.9 %
range seen on training maps in any of three scale-free statistics: the fraction of exact
zeros, mean / RMS, and sharpness log10(mean |∇x|² / mean x²). With several models (auto), a
box is flagged only when it is unusual for every model that answered."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import models
from .progress import say
from .volume import InputError, Volume, write_volume

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights",
                         "uncertainty.json")
DEFAULT_COPIES = 4
# the copies, in order: (axis permutation, flipped axes) of the [z, y, x] grid; the first is
# the map itself. Each mixes transposes and flips so that few copies already differ a lot.
COPIES = (((0, 1, 2), ()), ((0, 1, 2), (0, 1, 2)), ((2, 1, 0), ()), ((1, 2, 0), (1,)),
          ((0, 2, 1), (0,)), ((2, 0, 1), (2,)), ((1, 0, 2), (0, 2)), ((2, 1, 0), (0, 1)))
MAX_COPIES = len(COPIES)
STATS = ("zeros", "mean_over_rms", "sharpness")
PERCENTILES = (0.1, 99.9)  # of the training boxes' statistics: the range taken as seen
SLAB = 48  # planes per slab of the box statistics (memory: a few slabs, not the whole grid)
_CACHE: dict = {}


@dataclass
class Uncertainty:
    """Spread (Å, 0 outside the mask), OOD flags and their JSON summaries."""

    spread: np.ndarray
    ood: np.ndarray
    summary: dict
    ood_summary: dict = field(default_factory=dict)

    def write(self, vol: Volume, paths: dict) -> dict:
        """Write OUT_spread.mrc and OUT_ood.mrc (inside the caller's OutputSet); JSON keys."""
        write_volume(paths["spread"], vol, self.spread)
        write_volume(paths["ood"], vol, self.ood.astype(np.float32))
        return {"uncertainty": {**self.summary, "file": os.path.abspath(paths["spread"])},
                "ood": {**self.ood_summary, "file": os.path.abspath(paths["ood"])}}


def check_copies(k, allow_zero: bool = False) -> int:
    """K copies for the spread: 2 … MAX_COPIES (0 = no uncertainty when ``allow_zero``); with
    K > 0 the reference must load (checked before any model does)."""
    if k == 0 and allow_zero:
        return k
    if isinstance(k, int) and 2 <= k <= MAX_COPIES:
        reference()
        return k
    raise InputError(f"--tta {k}: the spread needs 2 to {MAX_COPIES} copies of the map")


def reference(path: str = REFERENCE) -> dict:
    """The fitted scale factors and training-box ranges (weights/uncertainty.json)."""
    if path not in _CACHE:
        try:
            with open(path, encoding="utf-8") as fh:
                ref = json.load(fh)
            ref["tta"]["scale"]
            ref["box_statistics"]["models"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"uncertainty reference {path} is missing or invalid ({exc}); "
                             "refit it: python benchmarks/uncertainty.py --fit") from None
        _CACHE[path] = ref
    return _CACHE[path]


def to_copy(a: np.ndarray, copy) -> np.ndarray:
    perm, flips = copy
    out = np.transpose(a, perm)
    return np.ascontiguousarray(np.flip(out, flips) if flips else out)


def from_copy(a: np.ndarray, copy) -> np.ndarray:
    perm, flips = copy
    a = np.flip(a, flips) if flips else a
    return np.ascontiguousarray(np.transpose(a, np.argsort(perm)))


def tta_sd(result, vol: Volume, model: str, calibrate: bool, k: int, progress=False):
    """SD (Å) over the masked voxels of the estimate and K−1 symmetric copies of it."""
    from . import estimate as E

    mask = result.mask
    first = result.resolution[mask]
    s1 = np.zeros(first.shape, np.float64)
    s2 = np.zeros(first.shape, np.float64)
    quiet = logging.getLogger(E.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the copies repeat the estimate's warnings: log them once
    try:
        for i, copy in enumerate(COPIES[1:k], 2):
            say(f"uncertainty: copy {i}/{k} of the map (axes {copy[0]}, flipped {copy[1]})")
            c = Volume(to_copy(vol.data, copy), vol.sampling)
            r = E.estimate(c, to_copy(mask, copy), model, progress, calibrate)
            d = from_copy(r.resolution, copy)[mask] - first  # shifted sums: no cancellation
            s1 += d
            s2 += d * d
    finally:
        quiet.setLevel(level)
    return np.sqrt(np.maximum(s2 - s1 * s1 / k, 0.0) / (k - 1)).astype(np.float32)


def scale_for(k: int, ref: dict | None = None) -> tuple[float, float]:
    """(scale, relative floor) fitted for K copies (the nearest fitted K otherwise)."""
    table = (ref or reference())["tta"]["scale"]
    key = min(table, key=lambda n: abs(int(n) - k))
    return float(table[key]["scale"]), float(table[key]["floor"])


def attach(result, vol: Volume, model: str, calibrate: bool, k: int = DEFAULT_COPIES,
           progress=False) -> None:
    """Add ``result.uncertainty``: spread from K copies, OOD flags and their summaries."""
    from .report import stats

    ref = reference()
    t = time.perf_counter()
    sd = tta_sd(result, vol, model, calibrate, k, progress)
    flags, ood = ood_flags(result, vol, ref)
    seconds = time.perf_counter() - t
    scale, floor = scale_for(k, ref)
    res = result.resolution[result.mask]
    spread = np.zeros(vol.shape, np.float32)
    spread[result.mask] = scale * np.sqrt(sd * sd + (floor * res) ** 2)
    result.timings["uncertainty_s"] = seconds
    base = result.timings.get("total_s", 0.0)
    fit = ref["tta"]
    summary = {
        "method": "test-time augmentation: SD over K symmetric copies (axis permutations and "
                  "flips), spread = scale · √(SD² + (floor · resolution)²)",
        "copies": k, "scale": scale, "floor": floor,
        "spread": stats(spread[result.mask]), "raw_sd": stats(sd),
        "seconds": round(seconds, 3), "estimate_seconds": round(base, 3),
        "cost_ratio": round((base + seconds) / base, 2) if base > 0 else None,
        "fitted_on": {key: fit.get(key) for key in ("model", "calibrated", "structures", "maps",
                                                    "seed", "command", "target_coverage")}}
    if model != fit.get("model") or calibrate != fit.get("calibrated", True):
        summary["note"] = (f"scale fitted for --model {fit.get('model')} with calibration; "
                           "coverage may differ here")
    result.uncertainty = Uncertainty(spread, flags, summary, ood)


def ood_flags(result, vol: Volume, ref: dict) -> tuple[np.ndarray, dict]:
    """OOD voxels (bool, input grid) and counts per reason."""
    from .report import at_clamp

    mask, res = result.mask, result.resolution
    lo, hi = result.clamp
    floor = mask & at_clamp(res, lo)
    nyquist = abs(lo - 2.0 * vol.sampling) < 1e-3
    reasons = {"floor": floor & (not nyquist), "nyquist": floor & nyquist,
               "ceiling": mask & at_clamp(res, hi)}
    box, per_stat, note = box_flags(result, vol, ref)
    reasons["box_statistics"] = box
    flags = np.logical_or.reduce(list(reasons.values()))
    n = int(mask.sum())
    counts = {k: int(np.count_nonzero(v)) for k, v in reasons.items()}
    summary = {"voxels": int(np.count_nonzero(flags)),
               "fraction": round(float(np.count_nonzero(flags)) / n, 5), "reasons": counts,
               "box_statistics": {"flagged_by": {k: int(np.count_nonzero(v))
                                                 for k, v in per_stat.items()},
                                  "percentiles": list(PERCENTILES), "note": note},
               "clamp": [float(lo), float(hi)]}
    return flags, summary


def box_flags(result, vol: Volume, ref: dict):
    """Voxels whose box is outside the training range for every model that answered."""
    from .estimate import _rescale_linear, model_grid

    mask = result.mask
    table = ref["box_statistics"]["models"]
    box = mask.copy()
    per_stat = {s: np.zeros(mask.shape, bool) for s in STATS}
    used, missing = [], []
    for name, count in result.voxels.items():
        if count <= 0:
            continue
        card = models.read_card(models.weights_paths(name)[1])
        limits = table.get(name)
        if limits is None or limits.get("created") != card.extra.get("created"):
            missing.append(name)  # a trained model, or other weights: no training reference
            continue
        grid, mgrid, reached, same = model_grid(vol, mask, card)
        out = out_of_range(grid, limits, card.dense_spec().box, mgrid)
        if not same:
            scale = [vol.sampling / r for r in reached]
            out = {s: _rescale_linear(o.astype(np.float32), scale, vol.shape) > 0.5
                   for s, o in out.items()}
        any_stat = np.logical_or.reduce(list(out.values()))
        box &= any_stat
        for s in STATS:
            per_stat[s] |= out[s]
        used.append(name)
    if not used:
        box[:] = False
    per_stat = {s: v & box for s, v in per_stat.items()}
    note = (f"training-box ranges of the {', '.join(used)} model(s)" if used else
            "no training reference for this model: box statistics not checked")
    if used and missing:
        note += f"; none for {', '.join(missing)} (not checked)"
    return box, per_stat, note


def box_stats(x: np.ndarray, box: int = 13) -> dict:
    """Per voxel, of its box³ (last three axes; zero beyond ``x``): fraction of exact zeros,
    mean / RMS, and sharpness log10(mean |∇x|² / mean x²) (forward differences)."""
    x = np.asarray(x, np.float32)
    size = (1,) * (x.ndim - 3) + (box,) * 3

    def mean(a, cval=0.0):
        return ndimage.uniform_filter(a, size, mode="constant", cval=cval)

    m2 = np.maximum(mean(x * x), 0.0)
    grad = np.zeros_like(x)
    for ax in range(x.ndim - 3, x.ndim):
        d = np.diff(x, axis=ax, append=0)
        grad += d * d
    rms = np.sqrt(m2)
    ok = rms > 1e-6 * max(float(np.abs(x).max()), 1e-30)
    safe = np.where(ok, m2, 1.0)
    return {"zeros": mean((x == 0).astype(np.float32), 1.0),
            "mean_over_rms": np.where(ok, mean(x) / np.sqrt(safe), 0.0),
            "sharpness": np.where(ok, np.log10(np.maximum(mean(grad), 1e-30) / safe), -30.0)}


def out_of_range(grid: np.ndarray, limits: dict, box: int, where: np.ndarray) -> dict:
    """Per statistic, voxels of ``where`` outside [lo, hi] of ``limits``; slab by slab."""
    h = box // 2
    n = grid.shape[0]
    out = {s: np.zeros(grid.shape, bool) for s in STATS}
    for z0 in range(0, n, SLAB):  # a few slabs, each vectorised
        z1 = min(z0 + SLAB, n)
        a, b = max(z0 - h - 1, 0), min(z1 + h + 1, n)
        st = box_stats(grid[a:b], box)
        w = where[z0:z1]
        for s in STATS:
            lo, hi = limits[s]
            v = st[s][z0 - a:z1 - a]
            out[s][z0:z1] = w & ((v < lo) | (v > hi))
    return out
