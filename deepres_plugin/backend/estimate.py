"""Local resolution of a map with a dense DeepRes model (DESIGN.md §4.4).

Validate → (auto-mask) → Fourier-resample to the model sampling → fixed-shape tiles with a
6-voxel halo (tiles without mask voxels skipped) → dense model → clamp → linear resampling back
to the input grid → input mask applied. Every masked voxel is evaluated; border voxels see the
zero-padded map, as a per-box evaluation would."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import filters, models
from .calibration import nsr
from .masks import SOLVENT_MARGIN, solvent_noise
from .volume import (InputError, Volume, atomic_write_text, output_paths, read_mask,
                     read_volume, write_volume)

log = logging.getLogger(__name__)
TILE = 64  # output voxels per tile side on the model grid (one fixed shape: one oneDNN setup)
AUTO_HIGH_SAMPLING = 0.75  # `auto` may use the high model only at ≤ this sampling (Å/px)
AUTO_HIGH_MEDIAN = 3.0  # ... and only if the standard model's median is better than this (Å)
CLAMP_WARN_FRACTION = 0.3
_LOADED: dict = {}


@dataclass
class EstimateResult:
    resolution: np.ndarray
    mask: np.ndarray
    model: str
    card: models.ModelCard
    stats: dict
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    clamp: tuple = (0.0, 0.0)
    noise_sd: float | None = None  # solvent noise SD / masked map maximum, if the model uses it
    calibrated: bool = False  # the card's calibration was applied (calibration.py)


def get_model(name_or_path: str):
    """Load (once per process) a dense model and its card."""
    key = os.path.abspath(name_or_path) if name_or_path not in models.SHIPPED else name_or_path
    if key not in _LOADED:
        _LOADED[key] = models.load_dense(name_or_path)
    return _LOADED[key]


def estimate(vol: Volume, mask: np.ndarray | None, model: str = "auto",
             progress: bool = False, calibrate: bool = True) -> EstimateResult:
    """Local resolution (Å) of ``vol`` inside ``mask`` (auto-mask when None). ``calibrate``:
    apply the model card's calibration, when it has one (False: the network's raw answer)."""
    t0 = time.perf_counter()
    timings = {}
    if mask is None:
        from .masks import auto_mask

        mask = auto_mask(vol.data, vol.sampling)
        timings["auto_mask_s"] = time.perf_counter() - t0
    mask = np.asarray(mask, bool)
    if mask.shape != vol.shape:
        raise InputError(f"mask shape {mask.shape} differs from the map's {vol.shape}")
    if not mask.any():
        raise InputError("mask is empty")
    name = "standard" if model == "auto" else model
    result = _estimate_with(vol, mask, name, progress, timings, calibrate)
    if (model == "auto" and vol.sampling <= AUTO_HIGH_SAMPLING
            and result.stats["median"] < AUTO_HIGH_MEDIAN):
        log.info("standard model median %.2f Å < %.1f Å at %.3f Å/px: using the high model",
                 result.stats["median"], AUTO_HIGH_MEDIAN, vol.sampling)
        result = _estimate_with(vol, mask, "high", progress, timings, calibrate)
    result.timings["total_s"] = time.perf_counter() - t0
    return result


def _estimate_with(vol, mask, name, progress, timings, calibrate=True) -> EstimateResult:
    from .report import stats

    net, card = get_model(name)
    t = time.perf_counter()
    data = vol.data / max(float(np.abs(vol.data[mask]).max()), 1e-30)
    same = abs(vol.sampling - card.sampling) < 1e-3 * card.sampling
    if same:
        grid, reached = data, (vol.sampling,) * 3
        mgrid = mask
    else:
        grid, reached = filters.resample(data, vol.sampling, card.sampling)
        mgrid = _rescale_linear(mask.astype(np.float32), [r / vol.sampling for r in reached],
                                grid.shape) > 0
        mgrid = ndimage.binary_dilation(mgrid, iterations=2)
    timings["resample_s"] = timings.get("resample_s", 0.0) + time.perf_counter() - t
    spec = card.dense_spec()
    calibration = card.calibration() if calibrate else None
    warnings = []
    noise = None
    if spec.noise_input or calibration is not None:
        noise = solvent_noise(grid, mgrid, card.sampling)
        if noise is None:
            warnings.append(f"no solvent {SOLVENT_MARGIN:g} Å beyond the mask to measure the "
                            "noise: the map is taken as noise-free")
            noise = 0.0
        log.info("solvent noise SD %.4g × the masked maximum", noise)
    t = time.perf_counter()
    res = predict_tiles(net, grid, mgrid, spec.halo, progress, noise, calibration)
    timings["inference_s"] = timings.get("inference_s", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    if not same:
        res = _rescale_linear(res, [vol.sampling / r for r in reached], vol.shape)
    lo = max(card.res_min, 2.0 * vol.sampling)
    hi = card.res_max
    res = np.where(mask, np.clip(res, lo, hi), 0.0).astype(np.float32)
    timings["resample_back_s"] = timings.get("resample_back_s", 0.0) + time.perf_counter() - t
    inside = res[mask]
    st = stats(inside)
    if 2.0 * vol.sampling > card.res_min:
        warnings.append(f"sampling {vol.sampling:.3f} Å/px limits resolution to Nyquist "
                        f"{2 * vol.sampling:.2f} Å; the model was trained down to "
                        f"{card.res_min:.2f} Å")
    for bound, word in ((lo, "best"), (hi, "worst")):
        frac = float(np.mean(np.isclose(inside, bound, atol=1e-3)))
        if frac > CLAMP_WARN_FRACTION:
            warnings.append(f"{100 * frac:.0f} % of masked voxels sit at the {word} value the "
                            f"model can give ({bound:.2f} Å): the map may lie outside the "
                            f"trained range {card.res_min:.1f}–{card.res_max:.1f} Å")
    for w in warnings:
        log.warning(w)
    return EstimateResult(res, mask, name, card, st, dict(timings), warnings, (lo, hi), noise,
                          calibration is not None)


def predict_tiles(net, grid: np.ndarray, mask: np.ndarray, halo: int,
                  progress: bool = False, noise: float | None = None,
                  calibration=None) -> np.ndarray:
    """Dense prediction over ``grid`` in fixed-shape tiles; tiles without mask voxels skipped.
    ``noise``: the map's noise SD, for models that take it and for ``calibration``, which is
    applied per tile with each box's noise-to-signal ratio."""
    tile = min(TILE, int(np.ceil(max(grid.shape) / 8.0)) * 8)
    nt = [int(np.ceil(n / tile)) for n in grid.shape]
    padded = np.zeros([n * tile + 2 * halo for n in nt], np.float32)
    padded[halo:halo + grid.shape[0], halo:halo + grid.shape[1], halo:halo + grid.shape[2]] = grid
    mpad = np.zeros([n * tile for n in nt], bool)
    mpad[:mask.shape[0], :mask.shape[1], :mask.shape[2]] = mask
    occupied = mpad.reshape(nt[0], tile, nt[1], tile, nt[2], tile).any(axis=(1, 3, 5))
    out = np.zeros(mpad.shape, np.float32)
    todo = np.argwhere(occupied)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="DeepRes", unit="tile", leave=False)
    x = np.empty((1, tile + 2 * halo, tile + 2 * halo, tile + 2 * halo, 1), np.float32)
    inputs = models.model_inputs(net, x, None if noise is None else [[noise]])
    for iz, iy, ix in todo:  # a handful of tiles, each evaluated densely
        z, y, xx = iz * tile, iy * tile, ix * tile
        x[0, ..., 0] = padded[z:z + tile + 2 * halo, y:y + tile + 2 * halo, xx:xx + tile + 2 * halo]
        pred = np.asarray(net(inputs, training=False))[0, ..., 0]
        if calibration is not None:
            pred = calibration.apply(pred, nsr(noise or 0.0, x[0, ..., 0], 2 * halo + 1))
        out[z:z + tile, y:y + tile, xx:xx + tile] = pred
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out[:grid.shape[0], :grid.shape[1], :grid.shape[2]]


def _rescale_linear(arr: np.ndarray, scale, dst_shape) -> np.ndarray:
    """Linear interpolation onto another grid sharing voxel 0, axis by axis (memory stays a few
    copies of the output): destination index i along axis a reads source index i·scale[a]."""
    out = arr
    for ax in range(3):
        pos = np.arange(dst_shape[ax], dtype=np.float64) * scale[ax]
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, out.shape[ax] - 1)
        i1 = np.minimum(i0 + 1, out.shape[ax] - 1)
        shape = [1, 1, 1]
        shape[ax] = -1
        w = (pos - i0).clip(0, 1).astype(np.float32).reshape(shape)
        out = np.take(out, i0, axis=ax) * (1 - w) + np.take(out, i1, axis=ax) * w
    return out.astype(np.float32)


def run(map_path: str, out_path: str, mask_path: str | None = None, model: str = "auto",
        histogram: str | None = None, slices: str | None = None, chimerax: str | None = None,
        progress: bool = False, calibrate: bool = True) -> EstimateResult:
    """Read, estimate and write OUT.mrc (input grid and header), OUT.json and optional
    histogram/slices PNG and ChimeraX script; the auto-mask as OUT_mask.mrc without --mask."""
    from . import report

    t0 = time.perf_counter()
    vol = read_volume(map_path, "map")
    mask = read_mask(mask_path, vol) if mask_path else None
    t_read = time.perf_counter() - t0
    result = estimate(vol, mask, model, progress, calibrate)
    paths = output_paths(out_path)
    t = time.perf_counter()
    write_volume(paths["map"], vol, result.resolution)
    if mask_path is None:
        write_volume(paths["mask"], vol, result.mask.astype(np.float32))
    if histogram:
        report.histogram_png(result.resolution[result.mask], histogram)
    if slices:
        report.slices_png(vol.data, result.resolution, result.mask, slices,
                          vmin=result.clamp[0], vmax=result.card.res_max)
    if chimerax:
        report.write_chimerax(chimerax, map_path, paths["map"], vol,
                              (result.stats["p2_5"], result.stats["p97_5"]), mask=result.mask)
    result.timings["read_s"] = t_read
    result.timings["write_s"] = time.perf_counter() - t
    summary = {
        "input": os.path.abspath(map_path), "mask": os.path.abspath(mask_path) if mask_path
        else paths["mask"], "output": os.path.abspath(paths["map"]),
        "sampling": vol.sampling, "shape_zyx": list(vol.shape), "origin_xyz": list(vol.origin),
        "model": result.model, "model_sampling": result.card.sampling,
        "model_range": [result.card.res_min, result.card.res_max],
        "clamp": list(result.clamp), "noise_sd": result.noise_sd,
        "calibrated": result.calibrated, "stats": result.stats,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "warnings": result.warnings}
    atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return result
