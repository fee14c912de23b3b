"""Oversharpening check (DeepRes paper §3.4, DESIGN.md §4.5): a B-factor sweep.

An SNR-based local resolution from half maps (local FSC, computed once) cannot see
sharpening; DeepRes, which reads the detail a map shows, can. For each B of the sweep the map
is sharpened (exp(−B s²/4)), DeepRes is run and its percentiles recorded. The recommended B is
where DeepRes's 20th percentile (sharpened) meets the local FSC's 20th percentile: sharper than
that claims detail the half maps do not support. Without half maps, the reference is the local
FSC of the map against its fitted atomic model's density (noise-free, to Nyquist; threshold
0.5 = the half-map 0.143 criterion). With an atomic model, the model–map correlation per B
(model simulated on the map's grid, low-passed at the median local FSC resolution, CC inside
the mask) is a second, independent view."""
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
#: B-factor (Å²) given to every atom of a model map: refined B-factors would put the model's own
#: idea of local disorder into the reference; a uniform B only scales Fourier shells (no FSC
#: change), so the simplest, sharpest choice is 0 (the simulator removes its anti-alias blur)
MODEL_B = 0.0


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
    reference: str = "half maps"  # what the local FSC compares: "half maps" or "model"

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


def crossing(bfactors, deepres_p20, reference: float, source: str = "the half maps"):
    """Where DeepRes's 20th percentile meets ``reference`` going from the least sharpened B
    towards the most sharpened one (linear in B). Returns (recommended B or None, met,
    B of closest approach, message); ``source`` names the reference in the message."""
    b = np.asarray(bfactors, np.float64)
    d = np.asarray(deepres_p20, np.float64) - reference
    order = np.argsort(-b)  # least sharpened first
    b, d = b[order], d[order]
    best = float(b[int(np.argmin(np.abs(d)))])
    if d[0] <= 0:
        return None, False, best, (
            f"DeepRes 20 % ({reference + d[0]:.2f} Å) is already at or below the local-FSC "
            f"20 % ({reference:.2f} Å) at B = {b[0]:g} Å²: no sharpening within the range is "
            f"supported by {source} (the map may already be sharpened)")
    below = np.nonzero(d <= 0)[0]
    if below.size == 0:
        return None, False, best, (
            f"DeepRes 20 % stays above the local-FSC 20 % ({reference:.2f} Å) over the whole "
            f"range (closest {reference + d[-1]:.2f} Å at B = {b[-1]:g} Å²): try more negative B")
    i = int(below[0])
    rec = float(b[i - 1] + d[i - 1] / (d[i - 1] - d[i]) * (b[i] - b[i - 1]))
    return rec, True, rec, (
        f"DeepRes 20 % meets the local-FSC 20 % ({reference:.2f} Å) at B = {rec:.1f} Å²; "
        f"sharper than that shows detail {source} do{'es' * (source == 'the model')} not "
        "support")


def model_density(st, vol: Volume) -> np.ndarray:
    """Unfiltered density (1, z, y, x) of a gemmi structure on ``vol``'s grid (voxel size,
    origin/nstart as ChimeraX reads them), every atom at B = :data:`MODEL_B`. Atoms outside
    the box are left out; fewer than half inside: InputError."""
    from .report import grid_origin
    from .simulate import atom_densities, atom_table

    pos, _, _ = atom_table(st)
    box = pos - np.asarray(grid_origin(vol))
    lim = np.array(vol.shape[::-1]) * vol.sampling
    inside = np.all((box >= 0) & (box < lim), axis=1)
    if inside.mean() < 0.5:
        raise InputError(f"only {100 * inside.mean():.0f} % of the model's atoms lie inside the "
                         "map: is the model fitted to this map (same origin)?")
    groups = np.where(inside, 0, 1)  # group 1 (outside) is never rendered
    return atom_densities(st, box, groups, 1, vol.shape, vol.sampling, MODEL_B)


def model_map(st, vol: Volume, resolution: float, density: np.ndarray | None = None):
    """:func:`model_density` low-passed at ``resolution`` Å (at least Nyquist)."""
    from .simulate import filter_groups

    dens = model_density(st, vol) if density is None else density
    return filter_groups(dens, vol.sampling, [max(float(resolution), 2.0 * vol.sampling)])


def model_reference(st, vol: Volume, density: np.ndarray | None = None) -> np.ndarray:
    """The model's density out to Nyquist (B = 0): the noise-free reference of a map-vs-model
    local FSC, finer than any map on this grid, so the FSC falls where the *map* does."""
    return model_map(st, vol, 2.0 * vol.sampling, density)


def load_model(path: str, vol: Volume):
    """Read an atomic model for a map-vs-model reference, refusing one that does not sit in
    ``vol`` (residues.py's check: most atoms in the box and in density); no H, no waters."""
    from . import residues
    from .simulate import load_structure

    residues.load(path, vol)
    return load_structure(path)


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


def sweep(vol: Volume, half1: np.ndarray | None, half2: np.ndarray | None, mask: np.ndarray,
          bfactors,
          model: str = "auto", structure=None, box: float | None = None,
          threshold: float = 0.5, lowpass: float | None = None,
          callback=None) -> tuple[SweepResult, dict]:
    """Run the B sweep; ``callback(i, b, row)`` after each B.

    Without half maps (None, None) the reference is the local FSC of the map against
    ``structure``'s density (:func:`model_reference`; ``threshold`` then applies to map vs
    model). Every B is applied together with a low-pass at ``lowpass`` Å (default: the global
    half-map FSC-0.143 or map–model FSC-0.5 resolution; 0 = none), as relion_postprocess does:
    a B-factor alone would amplify the noise out to the box corners. Returns the result and
    the arrays worth saving: ``localfsc`` (its resolution map) and, at ``best_b``,
    ``sharpened`` (the map) and ``deepres`` (DeepRes of the sharpened map)."""
    from .estimate import estimate
    from .localfsc import local_fsc

    t0 = time.perf_counter()
    mask = np.asarray(mask, bool)
    by_model = half1 is None and half2 is None
    if by_model and structure is None:
        raise InputError("without half maps an atomic model is needed (model-based local FSC)")
    for name, h in (("half map 1", half1), ("half map 2", half2)):
        if h is None and not by_model:
            raise InputError(f"{name} is missing: give both half maps or neither")
        if h is not None and h.shape != vol.shape:
            raise InputError(f"{name} has shape {h.shape} but the map has {vol.shape}")
    bfactors = sorted((float(b) for b in bfactors), reverse=True)  # least sharpened first
    density = model_density(structure, vol) if structure is not None else None
    t_model = time.perf_counter()
    if by_model:
        lf = local_fsc(vol.data, model_reference(structure, vol, density), vol.sampling, mask,
                       box=box, threshold=threshold, reference="model")
    else:
        lf = local_fsc(half1, half2, vol.sampling, mask, box=box, threshold=threshold)
    lf_stats = percentiles(lf.resolution[mask])
    model_res = float(np.median(lf.resolution[mask]))
    if lowpass is None:
        lowpass = lf.global_resolution
    lowpass = float(lowpass) if lowpass and lowpass > 2.0 * vol.sampling else None
    t_lf = time.perf_counter()
    reference = (model_map(structure, vol, model_res, density) if structure is not None
                 else None)
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
    rec, met, best, message = crossing(bfactors, rows["p20"], lf_stats["p20"],
                                       "the model" if by_model else "the half maps")
    sharpened = sharpen(vol.data, vol.sampling, best, lowpass)
    best_res = estimate(vol.like(sharpened), mask, model).resolution
    timings = {"model_map_s": t_model - t0, "localfsc_s": t_lf - t_model,
               "sweep_s": t_sweep - t_lf, "total_s": time.perf_counter() - t0}
    result = SweepResult(bfactors, rows, lf_stats, rec, met, message, best, used, lowpass,
                         model_res, ccs, lf.box_angstrom, threshold, timings, warnings,
                         lf.reference)
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


def plot_png(result: SweepResult, path: str, title: str | None = None) -> str:
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
               label=f"local FSC 20 % ({result.localfsc['p20']:.2f} Å, unsharpened"
               + (", map vs model)" if result.reference == "model" else ", half maps)"))
    if result.met:
        ax.axvline(result.recommended_b, color="#27ae60", lw=2,
                   label=f"recommended B {result.recommended_b:.0f} Å²")
    ax.set_xlabel("B-factor applied (Å²; negative = sharpening)")
    ax.set_ylabel("Resolution (Å)")
    ax.set_title((title or "Oversharpening check")
                 + ("" if result.met else " (curves do not meet)"))
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


def run(map_path: str, half1: str | None, half2: str | None, out_dir: str,
        mask_path: str | None = None, structure_path: str | None = None,
        b_range: str = DEFAULT_RANGE, model: str = "auto", box: float | None = None,
        threshold: float = 0.5, lowpass: float | None = None, callback=None) -> SweepResult:
    """Read inputs, run :func:`sweep` and write into ``out_dir``: sharpening.csv/.json/.png,
    localfsc.mrc, sharpened.mrc and deepres.mrc (at ``best_b``) on the map's grid, and
    mask.mrc when the mask was made automatically. No half maps: the reference is the local
    FSC of the map against ``structure_path`` (required then)."""
    import json
    import os

    from .localfsc import read_halves
    from .masks import auto_mask
    from .volume import OutputSet, atomic_write_text, read_mask, read_volume, write_volume

    bfactors = parse_range(b_range)
    if (half1 is None) != (half2 is None):
        raise InputError("give both half maps (--half1 and --half2) or neither")
    if half1 is None and not structure_path:
        raise InputError("give the half maps (--half1, --half2) or an atomic model fitted to "
                         "the map (--atoms) for a model-based local FSC")
    vol = read_volume(map_path, "map")
    halves = (None, None)
    if half1 is not None:
        h1, h2 = read_halves(half1, half2)
        if h1.shape != vol.shape or abs(h1.sampling - vol.sampling) > 1e-3 * vol.sampling:
            raise InputError(f"half maps ({h1.shape}, {h1.sampling:.4f} Å/px) and map "
                             f"({vol.shape}, {vol.sampling:.4f} Å/px) are not on one grid")
        halves = (h1.data, h2.data)
    mask = read_mask(mask_path, vol) if mask_path else auto_mask(vol.data, vol.sampling)
    st = load_model(structure_path, vol) if structure_path else None
    result, arrays = sweep(vol, *halves, mask, bfactors, model, st, box, threshold, lowpass,
                           callback)
    paths = {k: os.path.join(out_dir, v) for k, v in FILES.items()}
    with OutputSet():  # all or nothing
        for key in ("localfsc", "sharpened", "deepres"):
            write_volume(paths[key], vol, arrays[key])
        if not mask_path:
            write_volume(paths["mask"], vol, mask.astype(np.float32))
        atomic_write_text(paths["csv"], table_csv(result))
        plot_png(result, paths["plot"])
        summary = {"map": os.path.abspath(map_path),
                   "half1": os.path.abspath(half1) if half1 else None,
                   "half2": os.path.abspath(half2) if half2 else None,
                   "mask": os.path.abspath(mask_path or paths["mask"]),
                   "atomic_model": os.path.abspath(structure_path) if structure_path else None,
                   "sampling": vol.sampling, "b_range": b_range,
                   "files": {k: os.path.abspath(p) for k, p in paths.items()
                             if k != "mask" or not mask_path},
                   **result.to_json()}
        atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return result
