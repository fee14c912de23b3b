"""Reports on a local-resolution map: statistics, histogram and coloured-slice PNGs
(matplotlib, Agg canvas, imported lazily), a ChimeraX script, and a rough global resolution
from the radial power spectrum (for `deepres info`). All files are written atomically."""
from __future__ import annotations

import math
import os

import numpy as np

from ..constants import DEFAULT_COLORMAP as DEFAULT_CMAP
from .volume import InputError, Volume, atomic_path, atomic_write_text, write_volume

#: percentiles reported by :func:`stats` (key → percentile)
PERCENTILES = {"p2_5": 2.5, "p5": 5, "p20": 20, "p25": 25, "p50": 50, "p75": 75, "p95": 95,
               "p97_5": 97.5}
PALETTE_STEPS = 9  # colours sampled along the colour map for ChimeraX
NO_VALUE = 10000.0  # what ChimeraX puts outside the mask (0 in the file) before colouring
NO_VALUE_FROM = 100.0  # Å: sampled values from here up are grey (outside the mask or its edge)
NO_VALUE_COLOUR = "#b4b4b4"


def at_clamp(values: np.ndarray, bound: float) -> np.ndarray:
    """Which ``values`` sit at a clamp end ``bound`` (Å): within 1e-3 Å of it."""
    return np.isclose(values, bound, atol=1e-3)


def stats(values: np.ndarray) -> dict:
    """Median, mean, SD, min, max, percentiles and count of ``values`` (JSON-safe numbers)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise InputError("no voxels inside the mask: nothing to report")
    pct = np.percentile(v, list(PERCENTILES.values()))
    out = {"median": float(np.median(v)), "mean": float(v.mean()), "sd": float(v.std()),
           "min": float(v.min()), "max": float(v.max()), "n_voxels": int(v.size)}
    out.update({k: float(p) for k, p in zip(PERCENTILES, pct)})
    return out


def check_cmap(name: str) -> str:
    """``name`` if matplotlib knows that colour map, else InputError with a few choices."""
    from matplotlib import colormaps

    if name not in colormaps:
        raise InputError(f"unknown colour map {name!r}: give a matplotlib name, e.g. viridis "
                         "(default), cividis, plasma, magma, inferno, turbo or jet")
    return name


def hex_colours(cmap: str, n: int = PALETTE_STEPS) -> list[str]:
    """``n`` hex colours sampled evenly along a matplotlib colour map."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cm = colormaps[check_cmap(cmap)]
    return [to_hex(cm(t)) for t in np.linspace(0.0, 1.0, max(2, int(n)))]


def colour_range(values: np.ndarray) -> tuple[float, float]:
    """The colour range shared by slices, histogram and ChimeraX key: 2.5–97.5 % of the
    values, widened to 0.1 Å steps (at least 1 Å wide)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise InputError("no voxels inside the mask: nothing to colour")
    lo, hi = np.percentile(v, [2.5, 97.5])
    lo, hi = math.floor(lo * 10 + 1e-6) / 10, math.ceil(hi * 10 - 1e-6) / 10
    if hi - lo < 1.0:
        mid = 0.5 * (lo + hi)
        lo, hi = round(mid - 0.5, 1), round(mid + 0.5, 1)
    return lo, hi


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str, dpi: int = 110) -> str:
    """Save a figure as PNG through a temp file + rename."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def histogram_png(values: np.ndarray, path: str, bin_width: float = 0.25,
                  title: str | None = None, cmap: str = DEFAULT_CMAP, vrange=None,
                  clamp=None, clamp_why=("", "")) -> str:
    """Write :func:`histogram_figure` as a PNG; returns ``path``."""
    return _save(histogram_figure(values, bin_width, title, cmap, vrange, clamp, clamp_why),
                 path)


def histogram_figure(values: np.ndarray, bin_width: float = 0.25, title: str | None = None,
                     cmap: str = DEFAULT_CMAP, vrange=None, clamp=None, clamp_why=("", "")):
    """Histogram of resolutions (Å) with ``bin_width`` Å bins, coloured with ``cmap`` over
    ``vrange`` (default :func:`colour_range`), median marked. ``clamp`` (lo, hi): voxels sitting
    at those values are hatched and counted in the legend, with ``clamp_why`` as the reason."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise InputError("no voxels inside the mask: no histogram to draw")
    if not bin_width > 0:
        raise InputError(f"histogram bin width must be > 0 Å (got {bin_width})")
    lo = math.floor(v.min() / bin_width) * bin_width
    nbins = max(1, math.ceil((v.max() - lo) / bin_width + 1e-9))
    if v.max() >= lo + nbins * bin_width:
        nbins += 1
    if nbins > 5000:
        raise InputError(f"bin width {bin_width} Å gives {nbins} bins; choose a larger one")
    med = float(np.median(v))
    norm = Normalize(*(colour_range(v) if vrange is None else vrange))
    cm = colormaps[check_cmap(cmap)]
    fig = _figure((6.4, 4.0))
    ax = fig.add_subplot(111)
    edges = lo + bin_width * np.arange(nbins + 1)
    _, _, patches = ax.hist(v, bins=edges, edgecolor="white", linewidth=0.4)
    for patch, left in zip(patches, edges[:-1]):
        patch.set_facecolor(cm(norm(left + 0.5 * bin_width)))
    ax.axvline(med, color="#c0392b", linewidth=2, label=f"median {med:.2f} Å")
    for bound, word, why in zip(clamp or (), ("floor", "ceiling"), clamp_why):
        at = at_clamp(v, bound)
        if at.any():
            k = min(int((bound - lo) // bin_width), nbins - 1)
            patches[k].set_hatch("////")
            patches[k].set_edgecolor("black")
            n = int(at.sum())
            patches[k].set_label(f"{n} voxel{'s' * (n != 1)} ({100 * at.mean():.1f} %) clamped "
                                 f"at the {word} {bound:.2f} Å" + (f":\n{why}" if why else ""))
    ax.set_xlabel("Resolution (Å)")
    ax.set_ylabel("Voxels")
    ax.set_title(title or f"Local resolution inside the mask ({v.size} voxels)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


_AXES = {"z": 0, "y": 1, "x": 2}


def _take(data, axis, index):
    return np.take(data, index, axis=_AXES[axis])


def _slice_plan(mask, axis, index, grid):
    """List of (axis, index) to draw: 4 along ``axis`` (grid), one (index) or 3 orthogonal."""
    if axis not in _AXES:
        raise InputError(f"slice axis must be x, y or z (got {axis!r})")
    idx = np.nonzero(mask)
    if grid:
        a = _AXES[axis]
        if index is not None:
            picks = [int(i) for i in np.atleast_1d(index)]
        else:
            lo, hi = (int(idx[a].min()), int(idx[a].max())) if idx[0].size else \
                (0, mask.shape[a] - 1)
            picks = [int(round(t)) for t in np.linspace(lo, hi, 6)[1:-1]]
        plan = [(axis, i) for i in picks]
    elif index is not None:
        plan = [(axis, int(index))]
    else:
        centre = [int(round(float(i.mean()))) if i.size else n // 2
                  for i, n in zip(idx, mask.shape)]
        plan = [(ax, centre[_AXES[ax]]) for ax in ("z", "y", "x")]
    for ax, i in plan:
        if not 0 <= i < mask.shape[_AXES[ax]]:
            raise InputError(f"slice {ax}={i} is outside the map (0..{mask.shape[_AXES[ax]] - 1})")
    return plan


def slices_png(map_data: np.ndarray, res_data: np.ndarray, mask: np.ndarray, path: str,
               axis: str = "z", index=None, grid: bool = False, vmin: float | None = None,
               vmax: float | None = None, cmap: str = DEFAULT_CMAP,
               title: str | None = None, where: Volume | None = None,
               label: str = "Resolution (Å)") -> str:
    """Write :func:`slices_figure` as a PNG; returns ``path``."""
    return _save(slices_figure(map_data, res_data, mask, axis, index, grid, vmin, vmax, cmap,
                               title, where, label), path)


def slices_figure(map_data: np.ndarray, res_data: np.ndarray, mask: np.ndarray,
                  axis: str = "z", index=None, grid: bool = False, vmin: float | None = None,
                  vmax: float | None = None, cmap: str = DEFAULT_CMAP,
                  title: str | None = None, where: Volume | None = None,
                  label: str = "Resolution (Å)"):
    """Map slices in grey with the resolution (Å) coloured inside the mask and a colour bar
    (``label``: its title, for another per-voxel map such as the spread).

    Default: 3 orthogonal slices through the mask's centre; ``index``: that one slice along
    ``axis``; ``grid``: a 2×2 grid of 4 slices along ``axis`` spread over the mask (or the 4
    given in ``index``). Colour range: ``vmin``/``vmax`` or :func:`colour_range`. ``where``: the
    map's grid, to give slice positions in Å (else voxel indices)."""
    from matplotlib import colormaps

    mask = np.asarray(mask, bool)
    if map_data.shape != res_data.shape or mask.shape != map_data.shape:
        raise InputError(f"map {map_data.shape}, resolution {res_data.shape} and mask "
                         f"{mask.shape} must have the same shape")
    inside = res_data[mask]
    if inside.size == 0:
        raise InputError("no voxels inside the mask: no slices to draw")
    lo, hi = colour_range(inside)
    vmin = float(lo if vmin is None else vmin)
    vmax = float(hi if vmax is None else vmax)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmin + 0.5
    g_lo, g_hi = np.percentile(map_data, [1.0, 99.5])
    plan = _slice_plan(mask, axis, index, grid)
    rows, cols = (2, 2) if grid else (1, len(plan))
    fig = _figure((3.3 * cols + 1.0, 3.3 * rows + 0.5))
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(len(plan))]
    cm = colormaps[check_cmap(cmap)]
    first = grid_origin(where) if where is not None else None
    image = None
    for ax, (a, i) in zip(axes, plan):
        m2 = _take(mask, a, i)
        ax.imshow(_take(map_data, a, i), cmap="gray", vmin=g_lo, vmax=g_hi, origin="lower",
                  interpolation="nearest")
        image = ax.imshow(np.ma.masked_where(~m2, _take(res_data, a, i)), cmap=cm, vmin=vmin,
                          vmax=vmax, origin="lower", interpolation="nearest", alpha=0.85)
        rest = "xyz".replace(a, "")
        ax.set_xlabel(rest[0] if a != "x" else "y")
        ax.set_ylabel(rest[1] if a != "x" else "z")
        if first is None:
            ax.set_title(f"{a} = voxel {i}")
        else:
            ax.set_title(f"{a} = {first['xyz'.index(a)] + i * where.sampling:.1f} Å (voxel {i})")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes, label=label, shrink=0.85)
    if title:
        fig.suptitle(title)
    return fig


def grid_origin(vol: Volume) -> tuple[float, float, float]:
    """Position (x, y, z Å) of voxel (0, 0, 0) as ChimeraX reads our MRC headers: the header
    origin when it is not zero, else nstart × voxel size."""
    if any(o != 0 for o in vol.origin):
        return tuple(float(o) for o in vol.origin)
    return tuple(float(n) * vol.sampling for n in vol.nstart)


def contour_level(map_data: np.ndarray, mask: np.ndarray | None = None) -> float:
    """A surface level from the map inside the mask: the Otsu threshold of those values, which
    splits density from solvent within the mask (on EMD-5168 with its auto-mask, 2.0 σ of the
    box; 99 % of the voxels above it lie in the mask). Without a mask, the 95th percentile."""
    from .masks import otsu_threshold

    if mask is not None and np.any(mask):
        return otsu_threshold(map_data[np.asarray(mask, bool)])
    return float(np.percentile(map_data, 95))


def chimerax_palette(res_range, palette=None, cmap: str = DEFAULT_CMAP):
    """(lo, hi, palette stops, key) shared by the ChimeraX scripts: ``palette`` (default
    ``cmap`` sampled) over ``res_range`` Å, grey from :data:`NO_VALUE_FROM` + 1 Å up, and the
    ``key`` command's colour:label list in Å."""
    lo, hi = (float(r) for r in res_range)
    if not hi > lo:
        hi = lo + 1.0
    colours = list(hex_colours(cmap) if palette is None else palette)
    if len(colours) < 2:
        raise InputError("a ChimeraX palette needs at least two colours")
    if not hi < NO_VALUE_FROM:
        raise InputError(f"colour range {lo:g}–{hi:g} Å reaches {NO_VALUE_FROM:g} Å")
    steps = np.linspace(lo, hi, len(colours))
    stops = ":".join(f"{v:.2f},{c}" for v, c in zip(steps, colours))
    stops += f":{NO_VALUE_FROM:g},{colours[-1]}:{NO_VALUE_FROM + 1:g},{NO_VALUE_COLOUR}"
    labelled = set(np.linspace(0, len(colours) - 1, min(5, len(colours))).round().astype(int))
    key = " ".join(f"{c}:{v:.1f}Å" if k in labelled else f"{c}:"
                   for k, (c, v) in enumerate(zip(colours, steps)))
    return lo, hi, stops, key


def chimerax_script(map_path: str, res_path: str, vol: Volume, res_range, level=None,
                    palette=None, mask: np.ndarray | None = None,
                    cmap: str = DEFAULT_CMAP) -> str:
    """ChimeraX commands: open the map and the resolution map (paths written as given) on the
    input grid (voxel size, origin), surface at ``level`` (default :func:`contour_level`),
    colour the surface by resolution with ``palette`` (default: ``cmap`` sampled) over
    ``res_range`` (Å), grey where the resolution map is 0 (outside the mask), key in Å."""
    lo, hi, stops, key = chimerax_palette(res_range, palette, cmap)
    level = contour_level(vol.data, mask) if level is None else float(level)
    origin = ",".join(f"{o:.4f}" for o in grid_origin(vol))
    return "\n".join([
        "# DeepRes local resolution (deepres_plugin). Open with: chimerax this_file.cxc",
        "# Paths are relative to this file's folder (ChimeraX runs a .cxc from there).",
        f"# Surface: the map at level {level:.6g} (Otsu threshold of the map inside the mask).",
        f"# Colour: the resolution map sampled on the surface, {lo:.2f}–{hi:.2f} Å (beyond: the",
        "# end colours). Outside the mask the resolution map is 0; `volume threshold` makes that",
        f"# {NO_VALUE:g}, so the surface there and at the mask's edge stays grey.",
        f'open "{map_path}"',
        f'open "{res_path}"',
        f"volume #1 voxelSize {vol.sampling:.5f} origin {origin} style surface level {level:.6g}",
        f"volume #2 voxelSize {vol.sampling:.5f} origin {origin}",
        f"volume threshold #2 minimum 0.001 set {NO_VALUE:g} modelId #3",
        "volume #2,3 hide",
        f"color sample #1 map #3 palette {stops}",
        *chimerax_key(key),
    ])


def chimerax_key(key: str) -> list[str]:
    """The closing ChimeraX lines shared by the map and model scripts: the colour key in Å,
    its title, white background, soft lighting, view all."""
    return [f"key {key} pos 0.88,0.12 size 0.04,0.6",
            '2dlabels text "Resolution (Å)" xpos 0.80 ypos 0.75 size 16',
            "set bgColor white", "lighting soft", "view", ""]


def chimerax_map_copy(script_path: str, map_path: str) -> str | None:
    """Where :func:`write_chimerax` puts an uncompressed copy of a compressed map (ChimeraX
    cannot open .mrc.gz/.map.gz): SCRIPT_map.mrc; None when the map needs no copy."""
    if not map_path.lower().endswith((".gz", ".bz2")):
        return None
    return os.path.splitext(script_path)[0] + "_map.mrc"


def write_chimerax(path: str, map_path: str, res_path: str, vol: Volume, res_range,
                   level=None, palette=None, mask: np.ndarray | None = None,
                   cmap: str = DEFAULT_CMAP) -> str:
    """Write :func:`chimerax_script` to ``path`` (atomically) with paths relative to its
    folder, and a copy of ``vol`` if ``map_path`` is compressed; returns ``path``."""
    copy = chimerax_map_copy(path, map_path)
    if copy:
        write_volume(copy, vol)
        map_path = copy
    here = os.path.dirname(os.path.abspath(path))
    rel = [os.path.relpath(os.path.abspath(p), here) for p in (map_path, res_path)]
    return atomic_write_text(path, chimerax_script(*rel, vol, res_range, level, palette, mask,
                                                   cmap))


def power_resolution(data: np.ndarray, sampling: float, mask: np.ndarray | None = None,
                     snr: float = 10.0, dynamic_range: float = 1e-5) -> float:
    """Rough global resolution (Å) from the radial power spectrum of the masked map.

    The map is multiplied by a soft (2 Å Gaussian-edged) mask, default :func:`auto_mask`, to
    drop solvent noise; the noise floor is the median shell power over the outer 15 % of
    shells up to Nyquist (at least ``dynamic_range`` × the peak power, so noise-free filtered
    maps do not read their rounding errors); the answer is 1/f of the highest shell whose
    power is ≥ ``snr`` × that floor. Measured on simulated maps at 1 Å/px (3–8 Å, noise
    0–0.15 × max): within ~0.5 Å, except 3 Å with noise 0.15 (reads 4.1 Å); EMD-5168 reads
    6.8 Å (deposited 6.6 Å). A heuristic, not an FSC: no substitute for half maps."""
    from scipy import ndimage

    from .filters import radial_power
    from .masks import auto_mask

    mask = auto_mask(data, sampling) if mask is None else np.asarray(mask, bool)
    soft = ndimage.gaussian_filter(mask.astype(np.float32), 2.0 / sampling)
    freqs, power = radial_power(np.asarray(data, np.float32) * soft, sampling)
    n = len(freqs)
    floor = max(float(np.median(power[int(0.85 * n):])), dynamic_range * float(power[1:].max()))
    above = np.nonzero(power[1:] > snr * floor)[0] + 1
    return float(1.0 / freqs[above.max()]) if above.size else float(1.0 / freqs[1])
