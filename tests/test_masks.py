"""Automatic mask: covers the molecule, keeps solvent out, refuses empty/noise maps."""
from __future__ import annotations

import numpy as np
import pytest

from deepres_plugin.backend.masks import (auto_mask, dilate, keep_large_components,
                                          mask_summary, mask_warnings, otsu_threshold,
                                          solvent_noise)
from deepres_plugin.backend.simulate import atom_table, nearest_atom_maps, simulate
from deepres_plugin.backend.volume import InputError, read_volume


def _distance_to_atoms(st, sim):
    pos = atom_table(st)[0] - np.asarray(sim.origin)
    return nearest_atom_maps(pos, np.zeros(len(pos), int), sim.map.shape, sim.sampling)[0]


@pytest.mark.parametrize("name,res,noise,padding", [("1mol", 3.0, 0.05, 20.0),
                                                     ("5pti", 8.0, 0.15, 12.0),
                                                     ("1mol", 6.0, 0.0, 12.0)])
def test_auto_mask_covers_molecule_not_solvent(request, name, res, noise, padding):
    st = request.getfixturevalue(f"st_{name}")
    sim = simulate(st, 1.0, res, noise=noise, padding=padding, seed=1)
    mask = auto_mask(sim.map, 1.0)
    dist = _distance_to_atoms(st, sim)
    recall = (mask & sim.mask).sum() / sim.mask.sum()  # voxels within 3 Å of an atom
    assert recall >= 0.99
    assert not (mask & (dist > 9.0)).any()  # measured: no voxel 9 Å away from the atoms
    assert (mask & (dist > 6.0)).sum() < 0.15 * mask.sum()
    assert mask_summary(mask, 1.0)["components"] == 1


def test_auto_mask_on_real_map(real_map):
    vol = read_volume(real_map)
    mask = auto_mask(vol.data, vol.sampling)
    strong = vol.data > np.percentile(vol.data, 99)
    assert (mask & strong).sum() >= 0.99 * strong.sum()
    assert 0.05 < mask.mean() < 0.4  # an F-actin filament crossing the box (measured 0.24)
    assert "touches the box edge" in " ".join(mask_warnings(mask, vol.sampling))


def test_auto_mask_refuses_noise_and_empty_maps():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="automatic mask"):
        auto_mask(rng.standard_normal((40, 40, 40)).astype(np.float32), 1.0)
    with pytest.raises(InputError, match="automatic mask"):
        auto_mask(np.zeros((32, 32, 32), np.float32), 1.0)


def test_auto_mask_fills_holes():
    z, y, x = np.indices((64, 64, 64)) - 32.0
    r = np.sqrt(x * x + y * y + z * z)
    shell = ((r > 12) & (r < 18)).astype(np.float32)  # a hollow ball, cavity radius 12 Å
    mask = auto_mask(shell, 1.0, lowpass=8.0, dilation=2.0)
    assert mask[32, 32, 32]  # the cavity is inside the mask
    assert not mask[32, 32, 60]  # solvent outside is not


def test_dilate_is_euclidean():
    seed = np.zeros((15, 15, 15), bool)
    seed[7, 7, 7] = True
    grown = dilate(seed, 1.0, 3.0)
    z, y, x = np.indices(seed.shape) - 7
    assert np.array_equal(grown, x * x + y * y + z * z <= 9)
    assert grown.sum() == 123  # lattice points within radius 3
    assert np.array_equal(dilate(seed, 1.5, 3.0), x * x + y * y + z * z <= 4)


def test_keep_large_components_drops_specks():
    m = np.zeros((30, 30, 30), bool)
    m[5:15, 5:15, 5:15] = True  # 1000 voxels
    m[20:24, 20:24, 20:24] = True  # 64 voxels: kept (≥ 5 %)
    m[27, 27, 27] = True  # 1 voxel: dropped
    out = keep_large_components(m)
    assert out.sum() == 1064 and not out[27, 27, 27]


def test_otsu_splits_two_modes():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 9000), rng.normal(10, 1, 1000)])
    assert 3.0 < otsu_threshold(values) < 7.0


def test_mask_summary_and_warnings():
    m = np.zeros((20, 20, 20), bool)
    m[5:10, 5:10, 5:10] = True
    s = mask_summary(m, 2.0)
    assert s == {"n_voxels": 125, "fraction": 125 / 8000, "volume_A3": 1000.0,
                 "components": 1, "touches_border": False}
    assert mask_warnings(m, 2.0) == []
    big = np.ones((20, 20, 20), bool)
    warns = " ".join(mask_warnings(big, 1.0))
    assert "covers 100 % of the box" in warns and "box edge" in warns
    tiny = np.zeros((20, 20, 20), bool)
    tiny[10, 10, 10] = True
    assert "only 1 voxels" in mask_warnings(tiny, 1.0)[0]
    with pytest.raises(InputError, match="empty"):
        mask_warnings(np.zeros((4, 4, 4), bool), 1.0)


@pytest.mark.parametrize("res, noise", [(3.0, 0.08), (9.0, 0.08), (9.0, 0.02), (13.0, 0.0)])
def test_solvent_noise_measures_added_noise(st_1mol, res, noise):
    """The noise SD read in the solvent (> 5 Å beyond the 3 Å atom mask) is the SD that was
    added, within 10 % (+0.015 for the low-pass tails of blurred maps); a box without solvent
    gives None."""
    sim = simulate(st_1mol, 1.0, res, noise=noise, seed=4)
    clean = simulate(st_1mol, 1.0, res, noise=0.0, seed=4).map
    est = solvent_noise(sim.map, sim.mask, 1.0)
    assert abs(est - noise * clean.max()) <= 0.1 * noise * clean.max() + 0.015 * clean.max()
    assert solvent_noise(sim.map, np.ones_like(sim.mask), 1.0) is None
