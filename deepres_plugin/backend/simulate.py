"""Atomic model → simulated EM density (gemmi electron form factors), aliasing-free, with
uniform, per-chain or per-region resolution, Gaussian noise, a truth map and a mask.

Aliasing: atoms are spread with an extra blur Bx = 40·sampling² Å², which is removed in the
same FFT pass that low-passes (gain exp(+Bx s²/4) × raised cosine), see DESIGN.md §4.1."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy import fft as sfft

from .filters import COSINE_WIDTH, WORKERS, frequency_squared, raised_cosine
from .volume import InputError

ALIAS_BLUR_PER_PX2 = 40.0


@dataclass
class Simulation:
    """A simulated map with its per-voxel true resolution (Å, 0 outside the mask) and mask."""

    map: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    sampling: float
    group_resolutions: list  # resolution (Å) of each atom group
    group_names: list  # e.g. chain names per group
    origin: tuple = (0.0, 0.0, 0.0)


def load_structure(path: str):
    """Read a model (PDB/mmCIF, gzipped too): first model, no hydrogens, no waters."""
    import gemmi

    try:
        st = gemmi.read_structure(path)
    except Exception as exc:
        raise InputError(f"cannot read atomic model {path}: {exc}") from None
    if len(st) == 0:
        raise InputError(f"atomic model {path} has no models")
    for i in range(len(st) - 1, 0, -1):
        del st[i]
    st.remove_hydrogens()
    st.remove_waters()
    st.remove_empty_chains()
    if st[0].count_atom_sites() == 0:
        raise InputError(f"atomic model {path} has no atoms")
    return st


def atom_table(st):
    """Positions (N, 3) in Å, per-atom chain index and the chain names of model 0."""
    pos, chain_idx, names = [], [], []
    for ci, ch in enumerate(st[0]):
        names.append(ch.name)
        for res in ch:
            for at in res:
                pos.append(at.pos.tolist())
                chain_idx.append(ci)
    return np.asarray(pos, np.float64), np.asarray(chain_idx, np.int64), names


def _set_atoms(st, positions, weights, bfactor):
    """Write positions, occupancies (as per-atom weights) and a constant B into model 0."""
    import gemmi

    i = 0
    for ch in st[0]:
        for res in ch:
            for at in res:
                at.pos = gemmi.Position(*positions[i])
                at.occ = float(weights[i])
                at.b_iso = bfactor
                at.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
                i += 1


def box_for(positions: np.ndarray, sampling: float, padding: float = 12.0):
    """An even-sized box (z, y, x) that holds the atoms with ``padding`` Å on each side."""
    ext = positions.max(0) - positions.min(0) + 2 * padding
    n = np.ceil(ext / sampling).astype(int)
    n += n % 2
    return (int(n[2]), int(n[1]), int(n[0]))


def atom_densities(st, positions, groups, n_groups, shape, sampling, bfactor=0.0):
    """Unfiltered densities of each atom group, [group, z, y, x], spread with B + Bx.

    ``positions`` are in Å in box coordinates (voxel (0,0,0) at 0 Å)."""
    import gemmi

    nz, ny, nx = shape
    st = st.clone()  # positions, occupancies, B and cell are written below: keep the caller's
    st.cell = gemmi.UnitCell(nx * sampling, ny * sampling, nz * sampling, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    st.setup_cell_images()
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 0
    dc.blur = ALIAS_BLUR_PER_PX2 * sampling ** 2
    dc.set_grid_cell_and_spacegroup(st)
    out = np.empty((n_groups,) + tuple(shape), np.float32)
    for g in range(n_groups):
        _set_atoms(st, positions, (groups == g).astype(float), bfactor)
        dc.grid.set_size(nx, ny, nz)
        dc.put_model_density_on_grid(st[0])
        out[g] = np.array(dc.grid, copy=False).transpose(2, 1, 0)
    return out


def filter_groups(dens: np.ndarray, sampling: float, resolutions,
                  width: float = COSINE_WIDTH) -> np.ndarray:
    """Sum of group densities each low-passed at its resolution, alias blur removed."""
    shape = dens.shape[1:]
    s2 = frequency_squared(shape, sampling)
    unblur = np.exp(ALIAS_BLUR_PER_PX2 * sampling ** 2 * s2 / 4.0).astype(np.float32)
    s = np.sqrt(s2)
    total = None
    for d, res in zip(dens, resolutions):
        ft = sfft.rfftn(d, workers=WORKERS) * (unblur * raised_cosine(s, sampling, res, width))
        total = ft if total is None else total + ft
    return sfft.irfftn(total, s=shape, workers=WORKERS).astype(np.float32)


def nearest_atom_maps(positions, groups, shape, sampling):
    """Per voxel: distance (Å) to the nearest atom and that atom's group (vectorised EDT)."""
    idx = np.clip(np.rint(positions / sampling).astype(int), 0, np.array(shape[::-1]) - 1)
    seeds = np.ones(shape, bool)
    label = np.full(shape, -1, np.int64)
    seeds[idx[:, 2], idx[:, 1], idx[:, 0]] = False
    label[idx[:, 2], idx[:, 1], idx[:, 0]] = groups
    dist, (iz, iy, ix) = ndimage.distance_transform_edt(seeds, sampling=sampling,
                                                        return_indices=True)
    return dist.astype(np.float32), label[iz, iy, ix]


def random_rotation(rng) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def simulate(st, sampling: float, resolutions, noise: float = 0.0, bfactor: float = 0.0,
             padding: float = 12.0, shape=None, rotation=None, groups=None,
             mask_radius: float = 3.0, seed: int = 0,
             cosine_width: float = COSINE_WIDTH) -> Simulation:
    """Simulate a map of a gemmi structure.

    ``resolutions``: one value (uniform), or a dict chain name → Å (per chain), or a sequence
    with one value per group when ``groups`` (per-atom group index) is given.
    ``noise``: Gaussian SD as a fraction of the noise-free map maximum (paper: 0.08).
    The truth map holds the resolution of each voxel's nearest atom inside the mask
    (voxels within ``mask_radius`` Å of an atom). ``cosine_width``: low-pass edge width in
    cycles/px (the paper's 0.02)."""
    rng = np.random.default_rng(seed)
    pos, chain_idx, names = atom_table(st)
    if rotation is not None:
        pos = (pos - pos.mean(0)) @ np.asarray(rotation).T
    if groups is not None:
        res_list, group_names = [float(r) for r in resolutions], [f"group{i}" for i in
                                                                  range(len(resolutions))]
    elif isinstance(resolutions, dict):
        missing = [n for n in names if n not in resolutions]
        if missing:
            raise InputError(f"no resolution given for chain(s) {', '.join(missing)}")
        groups, res_list, group_names = chain_idx, [float(resolutions[n]) for n in names], names
    else:
        groups = np.zeros(len(pos), np.int64)
        res_list, group_names = [float(resolutions)], ["all"]
    if min(res_list) < 2 * sampling:
        raise InputError(f"resolution {min(res_list)} Å is beyond Nyquist (2 × {sampling} Å)")
    shape = tuple(shape) if shape is not None else box_for(pos, sampling, padding)
    centre = np.array(shape[::-1]) * sampling / 2.0
    shift = (pos.max(0) + pos.min(0)) / 2.0 - centre  # box coordinate + shift = model coordinate
    pos = pos - shift
    dens = atom_densities(st, pos, groups, len(res_list), shape, sampling, bfactor)
    vol = filter_groups(dens, sampling, res_list, cosine_width)
    if noise > 0:
        vol += rng.normal(0.0, noise * float(vol.max()), vol.shape).astype(np.float32)
    dist, label = nearest_atom_maps(pos, groups, shape, sampling)
    mask = dist <= mask_radius
    truth = np.where(mask, np.asarray(res_list, np.float32)[label], 0.0).astype(np.float32)
    # MRC origin (x, y, z Å) that puts the map on the input model (meaningless once rotated)
    origin = (0.0, 0.0, 0.0) if rotation is not None else tuple(float(v) for v in shift)
    return Simulation(vol, truth, mask, sampling, res_list, group_names, origin)

