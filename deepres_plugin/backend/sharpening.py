"""Oversharpening check (DeepRes paper §3.4, DESIGN.md §4.5): a B-factor sweep.

An SNR-based local resolution from half maps (local FSC, computed once) cannot see
sharpening; DeepRes, which reads the detail a map shows, can. For each B of the sweep the map
is sharpened (exp(−B s²/4)), DeepRes is run and its percentiles recorded. The recommended B is
where DeepRes's 20th percentile (sharpened) meets the local FSC's 20th percentile: sharper than
that claims detail the half maps do not support. With an atomic model, the model–map
correlation per B (model simulated on the map's grid, low-passed at the median local FSC
resolution, CC inside the mask) is a second, independent view."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import filters
from .volume import InputError, Volume

log = logging.getLogger(__name__)

PERCENTILES = (5, 20, 50, 80, 95)
DEFAULT_RANGE = "-300:0:20"
MAX_STEPS = 200


@dataclass
class SweepResult:
    """Percentiles (Å) per B, the local-FSC reference, the recommendation and the CC."""

    bfactors: list
    deepres: dict  # "p5", "p20", ... → list (one per B)
    localfsc: dict  # "p5", "p20", ... of the unsharpened half maps' local FSC
    recommended_b: float | None
    met: bool
    message: str
    best_b: float  # recommended_b when met, else the B where the two 20 % come closest
    model: str
    lowpass: float | None  # Å, low-pass applied with every B (global half-map FSC 0.143)
    model_map_resolution: float  # Å, median local FSC (the model map's resolution)
    cc: list | None = None  # model–map correlation per B (None without a model)
    localfsc_box: float = 0.0  # Å
    threshold: float = 0.5
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def parse_range(text: str) -> list[float]:
    """``"START:STOP:STEP"`` (Å², STOP included) → list of B; ``"-100,-60,0"`` also works."""
    text = str(text).strip()
    try:
        parts = [float(t) for t in text.split(":" if ":" in text else ",") if t.strip()]
    except ValueError:
        parts = None
    if parts is None or (":" in text and len(parts) != 3):
        raise InputError(f"bad B range {text!r}: use START:STOP:STEP in Å², "
                         "e.g. -300:0:20, or a list -100,-60,0")
    if ":" in text:
        start, stop, step = parts
        if not step > 0:
            raise InputError(f"B range step must be > 0 (got {step:g})")
        if stop < start:
            raise InputError(f"B range {text}: START must be ≤ STOP (e.g. -300:0:20)")
        if (stop - start) / step >= MAX_STEPS:
            raise InputError(f"B range {text!r} has more than {MAX_STEPS} values")
        values = list(np.arange(start, stop + step * 1e-6, step))
    else:
        values = sorted(set(parts))
    if not values:
        raise InputError(f"B range {text!r} is empty")
    if len(values) > MAX_STEPS:
        raise InputError(f"B range {text!r} has more than {MAX_STEPS} values")
    return [round(float(v), 6) for v in values]


def crossing(bfactors, deepres_p20, reference: float):
    """Where DeepRes's 20th percentile meets ``reference`` going from the least sharpened B
    towards the most sharpened one (linear in B). Returns (recommended B or None, met,
    B of closest approach, message)."""
    b = np.asarray(bfactors, np.float64)
    d = np.asarray(deepres_p20, np.float64) - reference
    order = np.argsort(-b)  # least sharpened first
    b, d = b[order], d[order]
    best = float(b[int(np.argmin(np.abs(d)))])
    if d[0] <= 0:
        return None, False, best, (
            f"DeepRes 20 % ({reference + d[0]:.2f} Å) is already at or below the local-FSC "
            f"20 % ({reference:.2f} Å) at B = {b[0]:g} Å²: no sharpening within the range is "
            "supported by the half maps (the map may already be sharpened)")
    below = np.nonzero(d <= 0)[0]
    if below.size == 0:
        return None, False, best, (
            f"DeepRes 20 % stays above the local-FSC 20 % ({reference:.2f} Å) over the whole "
            f"range (closest {reference + d[-1]:.2f} Å at B = {b[-1]:g} Å²): try more negative B")
    i = int(below[0])
    rec = float(b[i - 1] + d[i - 1] / (d[i - 1] - d[i]) * (b[i] - b[i - 1]))
    return rec, True, rec, (
        f"DeepRes 20 % meets the local-FSC 20 % ({reference:.2f} Å) at B = {rec:.1f} Å²; "
        "sharper than that shows detail the half maps do not support")


def model_map(st, vol: Volume, resolution: float) -> np.ndarray:
    """Density of a gemmi structure on ``vol``'s grid (voxel size, origin/nstart as ChimeraX
    reads them), low-passed at ``resolution`` Å. Atoms outside the box are left out."""
    from .report import grid_origin
    from .simulate import atom_densities, atom_table, filter_groups

    pos, _, _ = atom_table(st)
    box = pos - np.asarray(grid_origin(vol))
    lim = np.array(vol.shape[::-1]) * vol.sampling
    inside = np.all((box >= 0) & (box < lim), axis=1)
    if inside.mean() < 0.5:
        raise InputError(f"only {100 * inside.mean():.0f} % of the model's atoms lie inside the "
                         "map: is the model fitted to this map (same origin)?")
    groups = np.where(inside, 0, 1)  # group 1 (outside) is never rendered
    dens = atom_densities(st, box, groups, 1, vol.shape, vol.sampling)
    res = max(float(resolution), 2.0 * vol.sampling)
    return filter_groups(dens, vol.sampling, [res])


def correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two maps over the voxels of ``mask``."""
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    return float((x * y).sum() / max(np.sqrt((x * x).sum() * (y * y).sum()), 1e-30))


def sharpen(data: np.ndarray, sampling: float, bfactor: float,
            lowpass: float | None = None) -> np.ndarray:
    """Apply ``bfactor`` (Å², negative sharpens) and a raised-cosine low-pass at ``lowpass`` Å
    (None: none) in one FFT pass."""
    if not bfactor and lowpass is None:
        return np.asarray(data, np.float32)
    return filters.fourier_filter(data, sampling, lowpass, bfactor)


def percentiles(values: np.ndarray) -> dict:
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}


def sweep(vol: Volume, half1: np.ndarray, half2: np.ndarray, mask: np.ndarray, bfactors,
          model: str = "auto", structure=None, box: float | None = None,
          threshold: float = 0.5, lowpass: float | None = None,
          callback=None) -> tuple[SweepResult, dict]:
    """Run the B sweep; ``callback(i, b, row)`` after each B.

    Every B is applied together with a low-pass at ``lowpass`` Å (default: the global
    half-map FSC-0.143 resolution; 0 = none), as relion_postprocess does: a B-factor alone
    would amplify the noise out to the box corners. Returns the result and the arrays worth
    saving: ``localfsc`` (its resolution map) and, at ``best_b``, ``sharpened`` (the map) and
    ``deepres`` (DeepRes of the sharpened map)."""
    from .estimate import estimate
    from .localfsc import local_fsc

    t0 = time.perf_counter()
    mask = np.asarray(mask, bool)
    for name, h in (("half map 1", half1), ("half map 2", half2)):
        if h.shape != vol.shape:
            raise InputError(f"{name} has shape {h.shape} but the map has {vol.shape}")
    bfactors = sorted((float(b) for b in bfactors), reverse=True)  # least sharpened first
    lf = local_fsc(half1, half2, vol.sampling, mask, box=box, threshold=threshold)
    lf_stats = percentiles(lf.resolution[mask])
    model_res = float(np.median(lf.resolution[mask]))
    if lowpass is None:
        lowpass = lf.global_resolution
    lowpass = float(lowpass) if lowpass and lowpass > 2.0 * vol.sampling else None
    t_lf = time.perf_counter()
    reference = model_map(structure, vol, model_res) if structure is not None else None
    t_model = time.perf_counter()
    rows = {f"p{p}": [] for p in PERCENTILES}
    ccs = [] if reference is not None else None
    warnings, used = list(lf.warnings), model
    seen = set()
    for i, b in enumerate(bfactors):
        data = sharpen(vol.data, vol.sampling, b, lowpass)
        est = estimate(vol.like(data), mask, model)  # `auto` may fuse other models per B
        used = est.model
        for k, v in percentiles(est.resolution[mask]).items():
            rows[k].append(v)
        if ccs is not None:
            ccs.append(correlation(data, reference, mask))
        warnings += [f"B = {b:g}: {w}" for w in est.warnings if w not in seen]
        seen.update(est.warnings)
        row = {k: v[-1] for k, v in rows.items()}
        if ccs is not None:
            row["cc"] = ccs[-1]
        log.info("B %7.1f Å²: DeepRes 20 %% %.2f Å, median %.2f Å", b, row["p20"], row["p50"])
        if callback is not None:
            callback(i, b, row)
    t_sweep = time.perf_counter()
    rec, met, best, message = crossing(bfactors, rows["p20"], lf_stats["p20"])
    sharpened = sharpen(vol.data, vol.sampling, best, lowpass)
    best_res = estimate(vol.like(sharpened), mask, model).resolution
    timings = {"localfsc_s": t_lf - t0, "model_map_s": t_model - t_lf,
               "sweep_s": t_sweep - t_model, "total_s": time.perf_counter() - t0}
    result = SweepResult(bfactors, rows, lf_stats, rec, met, message, best, used, lowpass,
                         model_res, ccs, lf.box_angstrom, threshold, timings, warnings)
    return result, {"localfsc": lf.resolution, "sharpened": sharpened, "deepres": best_res}


FILES = {"csv": "sharpening.csv", "json": "sharpening.json", "plot": "sharpening.png",
         "localfsc": "localfsc.mrc", "sharpened": "sharpened.mrc", "deepres": "deepres.mrc",
         "mask": "mask.mrc"}


def table_csv(result: SweepResult) -> str:
    """One row per B: DeepRes percentiles, the local-FSC 20 % and the model–map CC."""
    head = ["b_factor"] + [f"deepres_p{p}" for p in PERCENTILES] + ["localfsc_p20", "model_cc"]
    lines = [",".join(head)]
    for i, b in enumerate(result.bfactors):
        vals = [f"{b:g}"] + [f"{result.deepres[f'p{p}'][i]:.4f}" for p in PERCENTILES]
        vals += [f"{result.localfsc['p20']:.4f}",
                 f"{result.cc[i]:.5f}" if result.cc is not None else ""]
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


def plot_png(result: SweepResult, path: str) -> str:
    """DeepRes percentiles vs B, the local-FSC 20 % line, the recommended B and the CC."""
    from .report import _figure, _save

    b = np.asarray(result.bfactors)
    d = {k: np.asarray(v) for k, v in result.deepres.items()}
    fig = _figure((7.2, 4.6))
    ax = fig.add_subplot(111)
    ax.fill_between(b, d["p5"], d["p95"], color="#4a7ab5", alpha=0.15, label="DeepRes 5–95 %")
    ax.fill_between(b, d["p20"], d["p80"], color="#4a7ab5", alpha=0.3, label="DeepRes 20–80 %")
    ax.plot(b, d["p50"], color="#1f3f6e", lw=1.5, label="DeepRes median")
    ax.plot(b, d["p20"], color="#1f3f6e", lw=2.2, ls="-", marker="o", ms=3,
            label="DeepRes 20 %")
    ax.axhline(result.localfsc["p20"], color="#c0392b", ls="--", lw=2,
               label=f"local FSC 20 % ({result.localfsc['p20']:.2f} Å, unsharpened)")
    if result.met:
        ax.axvline(result.recommended_b, color="#27ae60", lw=2,
                   label=f"recommended B {result.recommended_b:.0f} Å²")
    ax.set_xlabel("B-factor applied (Å²; negative = sharpening)")
    ax.set_ylabel("Resolution (Å)")
    ax.set_title("Oversharpening check" + ("" if result.met else " (curves do not meet)"))
    handles, labels = ax.get_legend_handles_labels()
    if result.cc is not None:
        ax2 = ax.twinx()
        line, = ax2.plot(b, result.cc, color="#8e44ad", lw=1.5, ls=":", marker="s", ms=3)
        ax2.set_ylabel("Model–map CC (in mask)", color="#8e44ad")
        handles.append(line)
        labels.append("model–map CC")
    ax.legend(handles, labels, fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def run(map_path: str, half1: str, half2: str, out_dir: str, mask_path: str | None = None,
        structure_path: str | None = None, b_range: str = DEFAULT_RANGE, model: str = "auto",
        box: float | None = None, threshold: float = 0.5, lowpass: float | None = None,
        callback=None) -> SweepResult:
    """Read inputs, run :func:`sweep` and write into ``out_dir``: sharpening.csv/.json/.png,
    localfsc.mrc, sharpened.mrc and deepres.mrc (at ``best_b``) on the map's grid, and
    mask.mrc when the mask was made automatically."""
    import json
    import os

    from .localfsc import read_halves
    from .masks import auto_mask
    from .simulate import load_structure
    from .volume import OutputSet, atomic_write_text, read_mask, read_volume, write_volume

    bfactors = parse_range(b_range)
    vol = read_volume(map_path, "map")
    h1, h2 = read_halves(half1, half2)
    if h1.shape != vol.shape or abs(h1.sampling - vol.sampling) > 1e-3 * vol.sampling:
        raise InputError(f"half maps ({h1.shape}, {h1.sampling:.4f} Å/px) and map "
                         f"({vol.shape}, {vol.sampling:.4f} Å/px) are not on one grid")
    mask = read_mask(mask_path, vol) if mask_path else auto_mask(vol.data, vol.sampling)
    st = load_structure(structure_path) if structure_path else None
    result, arrays = sweep(vol, h1.data, h2.data, mask, bfactors, model, st, box, threshold,
                           lowpass, callback)
    paths = {k: os.path.join(out_dir, v) for k, v in FILES.items()}
    with OutputSet():  # all or nothing
        for key in ("localfsc", "sharpened", "deepres"):
            write_volume(paths[key], vol, arrays[key])
        if not mask_path:
            write_volume(paths["mask"], vol, mask.astype(np.float32))
        atomic_write_text(paths["csv"], table_csv(result))
        plot_png(result, paths["plot"])
        summary = {"map": os.path.abspath(map_path), "half1": os.path.abspath(half1),
                   "half2": os.path.abspath(half2),
                   "mask": os.path.abspath(mask_path or paths["mask"]),
                   "atomic_model": os.path.abspath(structure_path) if structure_path else None,
                   "sampling": vol.sampling, "b_range": b_range,
                   "files": {k: os.path.abspath(p) for k, p in paths.items()
                             if k != "mask" or not mask_path},
                   **result.to_json()}
        atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return result
