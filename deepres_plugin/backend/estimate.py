"""Local resolution of a map with a dense DeepRes model (DESIGN.md §4.4).

Validate → (auto-mask) → Fourier-resample to the model sampling → fixed-shape tiles with a
6-voxel halo (tiles without mask voxels skipped) → dense model → clamp → linear resampling back
to the input grid → input mask applied. Every masked voxel is evaluated; border voxels see the
zero-padded map, as a per-box evaluation would."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import filters, models, registry
from .calibration import nsr
from .masks import SOLVENT_MARGIN, solvent_noise
from .progress import say
from .report import at_clamp
from .volume import (InputError, OutputSet, Volume, atomic_write_text, output_paths,
                     read_mask, read_volume, write_volume)

log = logging.getLogger(__name__)
TILE = 64  # output voxels per tile side on the model grid (one fixed shape: one oneDNN setup)
AUTO_HIGH_SAMPLING = 0.75  # `auto` may use the high model at ≤ this sampling (Å/px) ...
AUTO_HIGH_MEDIAN = 3.0  # ... when the standard model's median is better than this (Å)
FLOOR_FRACTION = 0.3  # `auto` leaves a model with more masked voxels than this on its floor
COARSE_RUN = 6.5  # `auto` runs the coarse model when any masked voxel reads worse than this (Å)
FUSE_COARSE = (7.0, 10.0)  # coarse answer (Å) over which the answer moves from standard to coarse
FUSE_STANDARD = (6.5, 8.5)  # ... and standard answer: both must agree that a voxel is coarse
# (the coarse model never saw maps finer than 5 Å: a noisy 3 Å region can read 9 Å there)
FUSE_HIGH = (4.5, 5.5)  # answer (Å) over which the answer moves from high to standard
FLOOR_RAMP = 0.5  # Å above the standard floor over which `high` stops refining floor voxels
CLAMP_WARN_FRACTION = 0.3
_LOADED: dict = {}
_LOADING = threading.Lock()  # steps run in threads (Scipion): one load per model and process


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
    voxels: dict = field(default_factory=dict)  # model name → masked voxels it answered
    files: list = field(default_factory=list)  # what run() wrote
    uncertainty: object = None  # uncertainty.Uncertainty, when asked for (run(uncertainty=K))


def get_model(name_or_path: str):
    """Load (once per process) a dense model and its card."""
    key = os.path.abspath(name_or_path) if name_or_path not in models.SHIPPED else name_or_path
    with _LOADING:
        if key not in _LOADED:
            say(f"loading the {os.path.basename(name_or_path)} model")
            _LOADED[key] = models.load_dense(name_or_path)
    card = _LOADED[key][1]
    say(f"{card.name} model ({card.sampling:g} Å/px, {card.res_min:g}–{card.res_max:g} Å): "
        "resampling the map to its grid, then tiles")
    return _LOADED[key]


def check_model(model: str) -> None:
    """Refuse a model that is not auto, a shipped name or a trained model's file."""
    if model == "auto" or model in models.SHIPPED:
        return
    wpath, cpath = models.weights_paths(model)
    if not (os.path.isfile(wpath) or os.path.isfile(cpath)):
        raise InputError(f"model {model!r} is not one of auto, {', '.join(models.SHIPPED)}, "
                         f"nor a trained model file (NAME.weights.h5; {wpath} not found)")


def _check_nyquist(vol: Volume, model: str) -> None:
    """Refuse a map whose Nyquist limit is at or beyond the worst value the model(s) can give."""
    nyquist = 2.0 * vol.sampling
    shipped = {n: models.read_card(models.weights_paths(n)[1]) for n in registry.available()}
    cards = (shipped if model == "auto" else
             {model: shipped.get(model) or models.read_card(models.weights_paths(model)[1])})
    if not cards or nyquist < max(c.res_max for c in cards.values()):
        return
    ranges = ", ".join(f"{n} {c.res_min:g}–{c.res_max:g} Å" for n, c in cards.items())
    other = [n for n, c in shipped.items() if n != model and nyquist < c.res_max]
    advice = (f"use --model {other[0]}" if other else
              "give a finer map (before binning) or train a model for it (deepres train "
              "--sampling, --res-min, --res-max)")
    raise InputError(f"voxel size {vol.sampling:.4g} Å/px: the map's Nyquist limit "
                     f"{nyquist:.4g} Å is coarser than what the model can tell ({ranges}); "
                     + advice)


def estimate(vol: Volume, mask: np.ndarray | None, model: str = "auto",
             progress: bool = False, calibrate: bool = True, ready=None) -> EstimateResult:
    """Local resolution (Å) of ``vol`` inside ``mask`` (auto-mask when None). ``calibrate``:
    apply the model card's calibration, when it has one (False: the network's raw answer).
    ``auto``: the standard model, fused with the coarse one where both read worse than about
    7–10 Å (FUSE_COARSE, FUSE_STANDARD); with the high one where it reads better than
    4.5–5.5 Å when the standard median is < 3 Å at ≤ 0.75 Å/px; and when over 30 % of the
    voxels sit on the standard floor (2.5 Å) of a map finer than that, the high model refines
    those voxels only (it may lower them, never raise them).
    Inputs with nothing to estimate are refused (InputError); ``ready()``, if given, runs after
    these checks and before any model loads (the CLI starts TensorFlow there)."""
    from .masks import auto_mask, check_density, mask_warnings

    t0 = time.perf_counter()
    timings = {}
    check_model(model)
    what = f"map {vol.path}" if vol.path else "map"
    check_density(vol.data, what=what)
    if mask is None:
        try:
            mask = auto_mask(vol.data, vol.sampling)
        except InputError as exc:
            raise InputError(f"{exc}; give a mask (--mask)") from None
        timings["auto_mask_s"] = time.perf_counter() - t0
    mask = np.asarray(mask, bool)
    if mask.shape != vol.shape:
        raise InputError(f"mask shape {mask.shape} differs from the map's {vol.shape}")
    if not mask.any():
        raise InputError("mask is empty")
    check_density(vol.data, mask, what, vol.sampling)
    _check_nyquist(vol, model)
    first = mask_warnings(mask, vol.sampling)
    say(f"map {' x '.join(map(str, vol.shape[::-1]))} voxels at {vol.sampling:.4g} Å/px, "
        f"{int(mask.sum())} voxels in the mask")
    if ready is not None:
        ready()
    if model != "auto":
        result = _estimate_with(vol, mask, model, progress, timings, calibrate)
    else:
        result = _auto(vol, mask, progress, timings, calibrate)
    result.warnings = list(dict.fromkeys(first + result.warnings))
    for w in result.warnings:
        log.warning(w)
    result.timings["total_s"] = time.perf_counter() - t0
    return result


def _auto(vol, mask, progress, timings, calibrate) -> EstimateResult:
    """The `auto` choice and per-voxel fusion of the shipped models (see :func:`estimate`)."""
    from .report import stats

    std = _estimate_with(vol, mask, "standard", progress, timings, calibrate)
    parts = {"standard": std}
    fused = std.resolution
    weights = {"standard": np.ones(fused.shape, np.float32)}
    if np.mean(std.resolution[mask] > COARSE_RUN) > 0.01:
        coarse = _estimate_with(vol, mask, "coarse", progress, timings, calibrate)
        parts["coarse"] = coarse
        t = np.minimum(_ramp(coarse.resolution, *FUSE_COARSE), _ramp(fused, *FUSE_STANDARD))
        fused = (1 - t) * fused + t * coarse.resolution
        weights = {"standard": 1 - t, "coarse": t}
    floor = _floor_fraction(std)
    to_high = vol.sampling <= AUTO_HIGH_SAMPLING and std.stats["median"] < AUTO_HIGH_MEDIAN
    below_floor = False
    if floor > FLOOR_FRACTION and not to_high:
        if 2.0 * vol.sampling < std.clamp[0] - 1e-3:
            to_high = below_floor = True
            log.info("%.0f %% of masked voxels on the standard model's floor (%.2f Å): using the "
                     "high model too", 100 * floor, std.clamp[0])
        else:
            std.warnings.append(
                f"{100 * floor:.0f} % of masked voxels sit on the standard model's floor "
                f"({std.clamp[0]:.2f} Å) and no finer model can help: the map's Nyquist limit "
                f"is {2 * vol.sampling:.2f} Å at {vol.sampling:.3f} Å/px")
    if to_high:
        high = _estimate_with(vol, mask, "high", progress, timings, calibrate)
        parts["high"] = high
        if below_floor:  # high only refines what the standard model puts on its floor
            t = _ramp(fused, std.clamp[0], std.clamp[0] + FLOOR_RAMP)
            t = np.where(high.resolution < fused, t, 1.0)  # where high reads worse: no say
            fused = (1 - t) * high.resolution + t * fused
        else:
            t = _ramp(fused, *FUSE_HIGH)
            fused = (1 - t) * high.resolution + t * fused
        weights = {k: w * t for k, w in weights.items()} | {"high": 1 - t}
    fused = np.where(mask, fused, 0.0).astype(np.float32)
    lo = min(p.clamp[0] for p in parts.values())
    hi = max(p.clamp[1] for p in parts.values())
    answered = {k: int(np.count_nonzero((w > 0.5) & mask)) for k, w in weights.items()}
    warnings = list(dict.fromkeys(w for p in parts.values() for w in p.warnings))
    name = "+".join(k for k in ("high", "standard", "coarse") if k in parts)
    if len(parts) > 1:  # the single models' floor/ceiling warnings do not apply to the fusion
        warnings = [w for w in warnings if "value the model can give" not in w]
        warnings += _clamp_warnings(fused[mask], lo, hi, "the models",
                                    f"their range ({', '.join(parts)})")
    return EstimateResult(fused, mask, name, std.card, stats(fused[mask]), dict(timings),
                          warnings, (lo, hi), std.noise_sd,
                          any(p.calibrated for p in parts.values()), answered)


def _ramp(x, lo, hi):
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _floor_fraction(result) -> float:
    return float(np.mean(at_clamp(result.resolution[result.mask], result.clamp[0])))


def _clamp_warnings(inside, lo, hi, who: str, where: str) -> list:
    """Warnings for more than CLAMP_WARN_FRACTION of the voxels at either clamp end."""
    out = []
    for bound, word in ((lo, "best"), (hi, "worst")):
        frac = float(np.mean(at_clamp(inside, bound)))
        if frac > CLAMP_WARN_FRACTION:
            out.append(f"{100 * frac:.0f} % of masked voxels sit at the {word} value {who} can "
                       f"give ({bound:.2f} Å): the map may lie outside {where}")
    return out


def _estimate_with(vol, mask, name, progress, timings, calibrate=True) -> EstimateResult:
    from .report import stats

    net, card = get_model(name)
    t = time.perf_counter()
    grid, mgrid, reached, same = model_grid(vol, mask, card)
    timings["resample_s"] = timings.get("resample_s", 0.0) + time.perf_counter() - t
    spec = card.dense_spec()
    calibration = card.calibration() if calibrate else None
    warnings = []
    noise = None
    if spec.noise_input:
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
    hi = max(card.res_max, lo)
    res = np.where(mask, np.clip(res, lo, hi), 0.0).astype(np.float32)
    timings["resample_back_s"] = timings.get("resample_back_s", 0.0) + time.perf_counter() - t
    inside = res[mask]
    st = stats(inside)
    if 2.0 * vol.sampling > card.res_min:
        warnings.append(f"sampling {vol.sampling:.3f} Å/px limits resolution to Nyquist "
                        f"{2 * vol.sampling:.2f} Å; the {name} model was trained down to "
                        f"{card.res_min:.2f} Å")
    warnings += _clamp_warnings(inside, lo, hi, "the model",
                                f"the trained range {card.res_min:.1f}–{card.res_max:.1f} Å")
    return EstimateResult(res, mask, name, card, st, dict(timings), warnings, (lo, hi), noise,
                          calibration is not None, {name: int(np.count_nonzero(mask))})


def model_grid(vol: Volume, mask: np.ndarray, card):
    """The map as ``card``'s net sees it: (grid, dilated mask, sampling reached, same grid)."""
    data = vol.data / max(float(np.abs(vol.data[mask]).max()), 1e-30)
    same = abs(vol.sampling - card.sampling) < 1e-3 * card.sampling
    if same:
        grid, reached = data, (vol.sampling,) * 3
        mgrid = ndimage.binary_dilation(mask)
    else:
        grid, reached = filters.resample(data, vol.sampling, card.sampling)
        mgrid = _rescale_linear(mask.astype(np.float32), [r / vol.sampling for r in reached],
                                grid.shape) > 0
        mgrid = ndimage.binary_dilation(mgrid, iterations=2)
    if card.extra.get("recipe", {}).get("mask_input"):
        grid = grid * mgrid  # what the net was trained on: map × mask dilated (Xmipp's input)
    return grid, mgrid, reached, same


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
            pred = calibration.apply(pred, 0.0 if noise is None else
                                     nsr(noise, x[0, ..., 0], 2 * halo + 1))
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
        progress: bool = False, calibrate: bool = True, cmap: str | None = None,
        ready=None, atoms: str | None = None, uncertainty: int = 0) -> EstimateResult:
    """Read, :func:`estimate` and :func:`write_outputs` (paths in ``result.files``).
    ``progress``: step lines on stderr (tqdm bars on a terminal). ``cmap``: colour map of the
    pictures and the script. ``ready``: see :func:`estimate`. ``atoms``: an atomic model in
    the map's frame, checked before the estimate; adds the per-residue files (:mod:`.residues`).
    ``uncertainty``: K > 0 adds the spread and OOD maps from K copies (:mod:`.uncertainty`)."""
    from . import progress as steps
    from . import residues, uncertainty as unc

    unc.check_copies(uncertainty, allow_zero=True)

    with steps.shown(progress):
        t0 = time.perf_counter()
        vol = read_volume(map_path, "map")
        mask = read_mask(mask_path, vol) if mask_path else None
        placed = residues.load(atoms, vol, out_path) if atoms else None
        t_read = time.perf_counter() - t0
        result = estimate(vol, mask, model, steps.bars(), calibrate, ready)
        result.timings["read_s"] = t_read
        if uncertainty:
            unc.attach(result, vol, model, calibrate, uncertainty, steps.bars())
        with OutputSet():  # the per-residue files join the same all-or-nothing set
            if placed is not None:
                result.warnings += residues.measure(placed, result.resolution, result.mask, vol)
            result.files = write_outputs(result, vol, map_path, out_path, mask_path, histogram,
                                         slices, chimerax, cmap)
            if placed is not None:
                result.files += residues.write(placed, out_path, result.resolution[result.mask],
                                               cmap)
    return result


def write_outputs(result: EstimateResult, vol: Volume, map_path: str, out_path: str,
                  mask_path: str | None = None, histogram: str | None = None,
                  slices: str | None = None, chimerax: str | None = None,
                  cmap: str | None = None) -> list[str]:
    """Write OUT.mrc (input grid and header), OUT.json, the auto-mask as OUT_mask.mrc when
    ``mask_path`` is None, and the optional histogram/slices PNG and ChimeraX script (with a
    decompressed copy of a .gz map), all or none (:class:`OutputSet`); returns their paths.
    The three pictures share one colour map and range (:func:`report.colour_range`)."""
    from . import report

    cmap = report.check_cmap(cmap or report.DEFAULT_CMAP)
    paths = output_paths(out_path)
    inside = result.resolution[result.mask]
    scale = report.colour_range(inside)
    extras = [p for p in (histogram, slices, chimerax,
                          chimerax and report.chimerax_map_copy(chimerax, map_path)) if p]
    written = [paths["map"], paths["json"]] + ([paths["mask"]] if not mask_path else []) + extras
    written += [paths["spread"], paths["ood"]] if result.uncertainty else []
    say(f"writing {len(written)} files")
    t = time.perf_counter()
    with OutputSet():
        write_volume(paths["map"], vol, result.resolution)
        if not mask_path:
            write_volume(paths["mask"], vol, result.mask.astype(np.float32))
        if histogram:
            report.histogram_png(inside, histogram, cmap=cmap, vrange=scale, clamp=result.clamp,
                                 clamp_why=_clamp_reasons(result, vol))
        if slices:
            report.slices_png(vol.data, result.resolution, result.mask, slices, vmin=scale[0],
                              vmax=scale[1], cmap=cmap, where=vol)
        if chimerax:
            report.write_chimerax(chimerax, map_path, paths["map"], vol, scale, mask=result.mask,
                                  cmap=cmap)
        result.timings["write_s"] = time.perf_counter() - t
        summary = {
            "input": os.path.abspath(map_path), "mask": os.path.abspath(mask_path) if mask_path
            else os.path.abspath(paths["mask"]), "output": os.path.abspath(paths["map"]),
            "sampling": vol.sampling, "shape_zyx": list(vol.shape),
            "origin_xyz": list(vol.origin), "model": result.model,
            "model_sampling": result.card.sampling,
            "model_range": [result.card.res_min, result.card.res_max],
            "clamp": sorted(result.clamp), "noise_sd": result.noise_sd,
            "models": result.voxels, "calibrated": result.calibrated, "stats": result.stats,
            "colour_map": {"name": cmap, "range": list(scale)},
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "warnings": list(dict.fromkeys(result.warnings))}
        if result.uncertainty:  # OUT_spread.mrc, OUT_ood.mrc and their JSON summaries
            summary |= result.uncertainty.write(vol, paths)
        atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return written


def _clamp_reasons(result: EstimateResult, vol: Volume) -> tuple[str, str]:
    """Why voxels sit at the clamp ends (for the histogram legend)."""
    lo = result.clamp[0]
    floor = (f"Nyquist limit, 2 × {vol.sampling:.3g} Å/px" if abs(lo - 2 * vol.sampling) < 1e-3
             else "the best value the model can give")
    return floor, "the worst value the model can give"
