"""Per-residue local resolution (`deepres estimate --atoms`): each mask voxel within
:data:`RADIUS` Å of an atom belongs to the residue of its nearest atom (k-d tree, exact
distances); a residue's median, 25 and 75 % are taken over its voxels. Outputs: the model with
the median in the B-factor column (mmCIF: also a ``_deepres_local_resolution`` loop), a CSV, a
plot along the sequence per chain and a ChimeraX script. Residues without a mask voxel get
no value (empty in the CSV, ``?`` in mmCIF, B = :data:`NO_VALUE_B`: grey in ChimeraX)."""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ..constants import DEFAULT_COLORMAP
from .volume import InputError, Volume, atomic_write_text
from .volume import output_paths as map_outputs

RADIUS = 2.5  # Å: mask voxels farther than this (or the voxel size) from every atom are left out
MIN_IN_BOX = 0.5  # refuse a model with fewer of its atoms inside the map's box
MIN_IN_DENSITY = 0.5  # ... or fewer of those in density above the map's mean + 1 SD
NO_VALUE_B = 999.0  # B-factor of residues without a mask voxel (above report.NO_VALUE_FROM)
CIF_CATEGORY = "_deepres_local_resolution."
CSV_COLUMNS = ("chain", "number", "name", "median", "q25", "q75", "voxels")


@dataclass
class Residues:
    """A model (first model only) on a map's grid and, once measured, its per-residue values."""

    structure: object  # gemmi.Structure
    path: str
    xyz: np.ndarray  # (N, 3) Å, non-hydrogen atoms
    owner: np.ndarray  # (N,) residue index of each atom
    chain: list = field(default_factory=list)
    number: list = field(default_factory=list)  # sequence number + insertion code, as text
    name: list = field(default_factory=list)
    median: np.ndarray | None = None  # NaN: no mask voxel
    q25: np.ndarray | None = None
    q75: np.ndarray | None = None
    voxels: np.ndarray | None = None


def output_paths(out_path: str, atoms_path: str) -> dict:
    """OUT_residues.pdb (a PDB model) or .cif (any other), .csv, .png and .cxc beside OUT."""
    stem = map_outputs(out_path)["json"][:-len(".json")]
    name = atoms_path.lower()[:-3] if atoms_path.lower().endswith(".gz") else atoms_path.lower()
    pdb = name.endswith((".pdb", ".ent"))
    return {"model": f"{stem}_residues{'.pdb' if pdb else '.cif'}",
            "csv": f"{stem}_residues.csv", "plot": f"{stem}_residues.png",
            "chimerax": f"{stem}_residues.cxc"}


def load(path: str, vol: Volume, out_path: str | None = None) -> Residues:
    """Read a model (any format gemmi reads) and refuse it unless it sits in ``vol``: most of
    its atoms in the box and in density. ``out_path``: refuse outputs that would overwrite it."""
    import gemmi

    if not os.path.isfile(path):
        raise InputError(f"atomic model file not found: {path}")
    if out_path and any(os.path.exists(p) and os.path.samefile(p, path)
                        for p in output_paths(out_path, path).values()):
        raise InputError(f"an output of -o {out_path} would overwrite the atomic model {path}")
    try:
        st = gemmi.read_structure(path)
    except Exception as exc:  # gemmi raises RuntimeError/ValueError on garbage
        raise InputError(f"cannot read atomic model {path}: {exc}") from None
    for i in range(len(st) - 1, 0, -1):
        del st[i]
    res = Residues(st, path, np.zeros((0, 3)), np.zeros(0, np.int64))
    xyz, owner = [], []
    for ch in st[0] if len(st) else []:
        for r in ch:
            heavy = [a.pos.tolist() for a in r if not a.is_hydrogen()]
            if heavy:
                xyz += heavy
                owner += [len(res.chain)] * len(heavy)
                res.chain.append(ch.name)
                res.number.append(f"{r.seqid.num}{r.seqid.icode.strip()}")
                res.name.append(r.name)
    if not xyz:
        raise InputError(f"atomic model {path} has no atoms")
    res.xyz, res.owner = np.asarray(xyz, np.float64), np.asarray(owner, np.int64)
    _check_placement(res, vol)
    return res


class PlacementError(InputError):
    """The atomic model does not sit in the map (another map, or another frame)."""


def _check_placement(res: Residues, vol: Volume) -> None:
    """PlacementError when most atoms lie outside the box or in near-zero density."""
    from scipy import ndimage

    from .report import grid_origin

    if not vol.data.std() > 0:
        return  # a constant map: the estimate's own checks say what is wrong with it
    ijk = (res.xyz - np.asarray(grid_origin(vol))) / vol.sampling  # x, y, z voxel coordinates
    inside = np.all((ijk >= 0) & (ijk <= np.array(vol.shape[::-1]) - 1), axis=1)
    hint = ("is it fitted to this map, in the map's frame (origin/nstart as ChimeraX "
            "reads them)?")
    if inside.mean() < MIN_IN_BOX:
        raise PlacementError(f"atomic model {res.path}: only {100 * inside.mean():.0f} % of its "
                         f"atoms lie inside the map's box; {hint}")
    dens = ndimage.map_coordinates(vol.data, ijk[inside][:, ::-1].T, order=1)
    level = float(vol.data.mean() + vol.data.std())
    frac = float(np.mean(dens > level))
    if frac < MIN_IN_DENSITY:
        raise PlacementError(f"atomic model {res.path}: only {100 * frac:.0f} % of its atoms inside "
                         f"the box sit in density (above the map's mean + 1 SD); {hint}")


def measure(res: Residues, resolution: np.ndarray, mask: np.ndarray, vol: Volume,
            radius: float = RADIUS) -> list[str]:
    """Fill the per-residue median, 25/75 % and voxel count; returns warnings."""
    from scipy.spatial import cKDTree

    from .report import grid_origin

    radius = max(float(radius), vol.sampling)
    zyx = np.argwhere(mask)
    xyz = np.asarray(grid_origin(vol)) + zyx[:, ::-1] * vol.sampling
    near = np.all((xyz >= res.xyz.min(0) - radius) & (xyz <= res.xyz.max(0) + radius), axis=1)
    dist, atom = cKDTree(res.xyz).query(xyz[near], distance_upper_bound=radius, workers=-1)
    hit = np.isfinite(dist)
    label = res.owner[atom[hit]]
    values = resolution[tuple(zyx[near][hit].T)].astype(np.float64)
    n = len(res.chain)
    res.voxels = np.bincount(label, minlength=n)
    res.median, res.q25, res.q75 = group_quantiles(values, label, n, (0.5, 0.25, 0.75))
    missing = int(np.count_nonzero(res.voxels == 0))
    if not missing:
        return []
    warning = (f"{missing} of {n} residues of the atomic model have no mask voxel within "
               f"{radius:g} Å: no value for them (grey in the residue script)")
    logging.getLogger(__name__).warning(warning)
    return [warning]


def group_quantiles(values: np.ndarray, label: np.ndarray, n: int, qs) -> list[np.ndarray]:
    """Per-group quantiles (linear, as numpy's default) of ``values`` grouped by ``label``
    (0..n-1), vectorised; NaN for empty groups."""
    order = np.lexsort((values, label))
    ordered = values[order]
    counts = np.bincount(label, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    last = np.maximum(starts + counts - 1, 0)
    out = []
    for q in qs:
        pos = starts + q * np.maximum(counts - 1, 0)
        lo = np.minimum(np.floor(pos).astype(np.int64), last)
        hi = np.minimum(lo + 1, last)
        frac = pos - lo
        if ordered.size:
            val = ordered[np.clip(lo, 0, ordered.size - 1)] * (1 - frac) + \
                ordered[np.clip(hi, 0, ordered.size - 1)] * frac
        else:
            val = np.zeros(n)
        out.append(np.where(counts > 0, val, np.nan))
    return out


def annotated_text(res: Residues, pdb: bool) -> str:
    """The model with each residue's median in the B-factor column (anisotropic B dropped);
    mmCIF also gets the ``_deepres_local_resolution`` loop."""
    import gemmi

    st = res.structure.clone()
    k = 0
    for ch in st[0]:
        for r in ch:
            if not any(not a.is_hydrogen() for a in r):
                continue  # a hydrogen-only residue had no atom to measure: left as it was
            b = NO_VALUE_B if np.isnan(res.median[k]) else round(float(res.median[k]), 2)
            for a in r:
                a.b_iso = b
                a.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
            k += 1
    if pdb:
        return st.make_pdb_string()
    doc = st.make_mmcif_document()
    loop = doc.sole_block().init_loop(CIF_CATEGORY, [
        "auth_asym_id", "auth_seq_id", "label_comp_id", "median_resolution",
        "q25_resolution", "q75_resolution", "voxel_count"])
    for row in _rows(res):
        loop.add_row([gemmi.cif.quote(v) if v else "?" for v in row])
    return doc.as_string()


def _rows(res: Residues) -> list[list[str]]:
    def fmt(v):
        return "" if np.isnan(v) else f"{v:.3f}"

    return [[c, num, name, fmt(m), fmt(a), fmt(b), str(int(n))] for c, num, name, m, a, b, n in
            zip(res.chain, res.number, res.name, res.median, res.q25, res.q75, res.voxels)]


def table_csv(res: Residues) -> str:
    """One row per residue: chain, number, name, median, q25, q75 (Å; empty: no voxel), voxels."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_rows(res))
    return buf.getvalue()


def columns(res: Residues) -> dict:
    """The table of a measured model as columns, as :func:`read_csv` gives them."""
    return {"chain": list(res.chain), "number": list(res.number), "name": list(res.name),
            "median": res.median, "q25": res.q25, "q75": res.q75, "voxels": res.voxels}


def read_csv(path: str) -> dict:
    """A residue CSV back as columns (values as floats, NaN where empty)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read the residue table {path}: {exc.strerror}") from None
    if rows and set(CSV_COLUMNS) - set(rows[0]):
        raise InputError(f"{path} is not a DeepRes residue table (columns {CSV_COLUMNS})")
    cols = {k: [r[k] for r in rows] for k in CSV_COLUMNS}
    for k in ("median", "q25", "q75"):
        cols[k] = np.array([float(v) if v else np.nan for v in cols[k]])
    cols["voxels"] = np.array([int(v) for v in cols["voxels"]], np.int64)
    return cols


def _polymer(name: str) -> bool:
    import gemmi

    info = gemmi.find_tabulated_residue(name)
    return info is not None and (info.is_amino_acid() or info.is_nucleic_acid())


def _position(number: str) -> int:
    digits = number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    return int(digits) if digits.lstrip("-").isdigit() else 0


def plot_figure(table: dict, cmap: str = DEFAULT_COLORMAP, vrange=None, title: str | None = None):
    """Median (points in the colour scale over ``vrange``) and 25–75 % band along the sequence,
    one panel per chain; polymer residues only (ligands are in the CSV); residues without a
    mask voxel ticked in grey at the bottom."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    from .report import NO_VALUE_COLOUR, _figure, check_cmap

    keep = np.array([_polymer(n) for n in table["name"]], bool)
    chains = list(dict.fromkeys(c for c, k in zip(table["chain"], keep) if k))
    med = table["median"][keep]
    known = med[np.isfinite(med)]
    if vrange is None:
        vrange = (float(known.min()), float(known.max()) + 1e-3) if known.size else (0.0, 1.0)
    norm, cm = Normalize(*vrange), colormaps[check_cmap(cmap)]
    fig = _figure((8.0, 0.9 + (1.9 if len(chains) <= 8 else 1.2) * max(1, len(chains))))
    if not chains:
        fig.text(0.5, 0.5, "no polymer residues in the model", ha="center")
        return fig
    lows = np.concatenate([table["q25"][keep], med])
    highs = np.concatenate([table["q75"][keep], med])
    ylo, yhi = np.nanmin(lows) if known.size else 0.0, np.nanmax(highs) if known.size else 1.0
    pad = 0.08 * max(yhi - ylo, 0.5)
    axes = fig.subplots(len(chains), 1, squeeze=False)[:, 0]
    chain = np.asarray(table["chain"])
    for ax, name in zip(axes, chains):
        sel = keep & (chain == name)
        x = np.array([_position(n) for n in np.asarray(table["number"])[sel]], float)
        m, a, b = table["median"][sel], table["q25"][sel], table["q75"][sel]
        gap = np.concatenate([[False], np.diff(x) != 1])
        xs, ms, as_, bs = (np.insert(v, np.nonzero(gap)[0], np.nan) for v in (x, m, a, b))
        ax.fill_between(xs, as_, bs, color="#4a7ab5", alpha=0.25, lw=0, label="25–75 %")
        ax.plot(xs, ms, color="#555555", lw=0.8)
        ok = np.isfinite(m)
        ax.scatter(x[ok], m[ok], c=cm(norm(m[ok])), s=10, zorder=3, label="median")
        if (~ok).any():
            ax.plot(x[~ok], np.full((~ok).sum(), ylo - 0.6 * pad), "|", color=NO_VALUE_COLOUR,
                    ms=12, mew=2, label=f"no mask voxel ({int((~ok).sum())})")
        ax.set_ylim(ylo - pad, yhi + pad)
        ax.set_ylabel("Å")
        ax.set_title(f"chain {name}: median {np.nanmedian(m):.2f} Å over {int(ok.sum())} "
                     "residues" if ok.any() else f"chain {name}: no value", fontsize=9,
                     loc="left")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False, loc="lower right", ncol=3,
                   bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1)
    axes[-1].set_xlabel("Residue number")
    fig.suptitle(title or "Local resolution per residue (median of its voxels)")
    fig.tight_layout()
    return fig


def plot_png(table: dict, path: str, cmap: str = DEFAULT_COLORMAP, vrange=None,
             title: str | None = None) -> str:
    """Write :func:`plot_figure` as a PNG; returns ``path``."""
    from .report import _save

    return _save(plot_figure(table, cmap, vrange, title), path)


def chimerax_script(model_path: str, res_range, cmap: str = DEFAULT_COLORMAP,
                    palette=None) -> str:
    """ChimeraX commands: open the annotated model (path as given) and colour it by B-factor
    (the per-residue median) with the palette and key of the map script."""
    from .report import chimerax_key, chimerax_palette

    lo, hi, stops, key = chimerax_palette(res_range, palette, cmap)
    return "\n".join([
        "# DeepRes local resolution per residue (deepres_plugin). Open with: chimerax this.cxc",
        "# Paths are relative to this file's folder (ChimeraX runs a .cxc from there).",
        f"# Colour: each residue's median local resolution (B-factor column), {lo:.2f}–{hi:.2f}",
        f"# Å (beyond: the end colours); residues without a mask voxel (B = {NO_VALUE_B:g}) grey.",
        f'open "{model_path}"',
        "cartoon #1",
        "show #1 & ~protein & ~nucleic & ~solvent atoms",
        f"color byattribute bfactor #1 palette {stops}",
        *chimerax_key(key),
    ])


def write(res: Residues, out_path: str, inside: np.ndarray, cmap: str | None = None) -> list[str]:
    """Write the annotated model, CSV, plot and ChimeraX script (:func:`output_paths`) in the
    colour map and range of the map's pictures (``inside``: the resolutions in the mask);
    atomic, and part of the caller's :class:`~.volume.OutputSet` when there is one."""
    from .report import check_cmap, colour_range

    cmap = check_cmap(cmap or DEFAULT_COLORMAP)
    res_range = colour_range(inside)
    paths = output_paths(out_path, res.path)
    atomic_write_text(paths["model"], annotated_text(res, paths["model"].endswith(".pdb")))
    atomic_write_text(paths["csv"], table_csv(res))
    plot_png(columns(res), paths["plot"], cmap, res_range)
    write_chimerax(paths["chimerax"], paths["model"], res_range, cmap)
    return list(paths.values())


def write_chimerax(path: str, model_path: str, res_range, cmap: str = DEFAULT_COLORMAP,
                   palette=None) -> str:
    """Write :func:`chimerax_script` (atomically) with the model's path relative to it."""
    here = os.path.dirname(os.path.abspath(path))
    rel = os.path.relpath(os.path.abspath(model_path), here)
    return atomic_write_text(path, chimerax_script(rel, res_range, cmap, palette))
