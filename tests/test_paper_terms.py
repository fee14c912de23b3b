"""The paper's terms (DESIGN.md §4.1b), pinned cheaply: a masked map reads like the unmasked
one, sharpening reads better and blurring worse (graded), training labels follow the ideal map a
box resembles, and `auto` fuses the coarse and high models where the standard one cannot answer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepres_plugin.backend import estimate as E
from deepres_plugin.backend import filters, samples, simulate
from deepres_plugin.backend.volume import Volume


@pytest.fixture(scope="module")
def two_chain_map(st_1mol):
    """1mol (val): chain A at 3.5 Å, chain B at 7 Å, white noise 0.08 × max."""
    return simulate.simulate(st_1mol, 1.0, {"A": 3.5, "B": 7.0}, noise=0.08, seed=11)


def _chain_medians(res, sim):
    return [float(np.median(res[(sim.truth == r) & sim.mask])) for r in sim.group_resolutions]


def test_masked_map_reads_like_the_unmasked_one(two_chain_map):
    sim = two_chain_map
    d = ndimage.distance_transform_edt(~sim.mask)
    soft = 0.5 * (1 + np.cos(np.pi * np.clip((d - 4.0) / 6.0, 0, 1)))
    plain = E.estimate(Volume(sim.map, 1.0), sim.mask, "auto")
    masked = E.estimate(Volume(sim.map * soft.astype(np.float32), 1.0), sim.mask, "auto")
    a, b = _chain_medians(plain.resolution, sim), _chain_medians(masked.resolution, sim)
    assert np.max(np.abs(np.subtract(a, b))) <= 0.3, (a, b)
    assert abs(a[0] - 3.5) <= 0.6 and abs(a[1] - 7.0) <= 1.0, a  # and both read about right
    assert plain.noise_sd is None  # no solvent-noise estimate feeds the shipped default


_NOISY_SHARPENING = pytest.mark.xfail(strict=True, reason=(
    "issue 16 target not met: B alone (white noise sharpened out to Nyquist) reads worse, "
    "not better (shipped standard: 13.0 / 6.8 / 3.7 / 5.0 / 6.8 Å for B = -100…+150 on this "
    "map; see wiki/Benchmarks.md 6d); remove when a model passes"))


@pytest.mark.parametrize("cut", [4.0, pytest.param(2.0, marks=_NOISY_SHARPENING)])
def test_sharpening_reads_better_and_blurring_worse(st_5pti, cut):
    """A 4 Å map with noise 0.08 × max: medians rise strictly with B (B inside the Nyquist
    sphere), followed by the low-pass at 4 Å (post-processing) and alone (cut 2 Å = Nyquist)."""
    sim = simulate.simulate(st_5pti, 1.0, 4.0, noise=0.08, seed=3)
    med = [float(np.median(E.estimate(Volume(filters.fourier_filter(sim.map, 1.0, cut, b), 1.0),
                                      sim.mask, "auto").resolution[sim.mask]))
           for b in (-100.0, -60.0, 0.0, 60.0, 150.0)]
    assert np.all(np.diff(med) > 0), med
    assert abs(med[2] - 4.0) <= 0.5, med


def test_effective_resolution_is_graded(st_5pti):
    pos = simulate.atom_table(st_5pti)[0]
    shape = simulate.box_for(pos, 1.0)
    dens = simulate.atom_densities(st_5pti, pos - pos.min(0) + 12.0, np.zeros(len(pos), int), 1,
                                   shape, 1.0, 5.0)
    spec = samples._power_spectrum(dens.sum(0), 1.0)
    for res in (3.5, 4.0, 9.0):
        eff = [float(samples.effective_resolution(spec, [res], b, 1.0)[0])
               for b in (-100.0, -60.0, 0.0, 60.0, 150.0)]
        assert np.all(np.diff(eff) > 0) and eff[2] == pytest.approx(res, abs=0.05), eff
    # a 3.5 Å map sharpened by B = −100 resembles a ~2.9 Å map: graded, not on a floor
    assert 2.6 < samples.effective_resolution(spec, [3.5], -100.0, 1.0)[0] < 3.2


def test_training_input_is_the_masked_map():
    recipe = samples.SampleRecipe(mask_input=True, noise_colour=True, global_b_fraction=0.5,
                                  patches_per_map=2, assignments=2)
    paths = [r["path"] for r in samples.manifest("train")[:3]]
    x, y, _ = samples.SampleMaker(recipe, paths).job(np.random.default_rng(4), paths[0])
    assert np.isfinite(x).all() and np.isfinite(y).all()
    lo, hi = recipe.res_bounds()
    labels = y[..., 0][y[..., 1] > 0]
    assert labels.min() >= lo and labels.max() <= hi
    assert (x == 0).mean() > 0.05  # solvent beyond the (dilated) mask is exactly 0


def test_auto_uses_the_coarse_model_at_low_resolution(st_1mol):
    sim = simulate.simulate(st_1mol, 2.0, 15.0, noise=0.08, seed=2)
    out = E.estimate(Volume(sim.map, 2.0), sim.mask, "auto")
    assert "coarse" in out.model and out.voxels["coarse"] > 0.9 * sim.mask.sum()
    assert abs(out.stats["median"] / 15.0 - 1) <= 0.15, out.stats["median"]


def test_auto_refines_the_standard_floor_with_the_high_model(st_5pti):
    """A 4 Å map sharpened by B = −100 Å² and low-passed at 4 Å puts over 30 % of the voxels on
    the standard model's 2.5 Å floor (measured: 45 %): `auto` consults the high model for those
    voxels; it may lower them (down to Nyquist), never raise any. (Here the recalibrated `high`
    reads them worse, so it answers none: the JSON's count says so.)"""
    sim = simulate.simulate(st_5pti, 1.0, 4.0, noise=0.08, seed=3)
    vol = Volume(filters.fourier_filter(sim.map, 1.0, 4.0, -100.0), 1.0)
    std = E.estimate(vol, sim.mask, "standard")
    out = E.estimate(vol, sim.mask, "auto")
    assert np.mean(np.isclose(std.resolution[sim.mask], 2.5, atol=1e-3)) > E.FLOOR_FRACTION
    assert "high" in out.model and "high" in out.voxels
    assert out.clamp[0] == pytest.approx(2.0)
    assert np.all(out.resolution[sim.mask] <= std.resolution[sim.mask] + 1e-4)
    assert out.voxels["high"] + out.voxels["standard"] == int(sim.mask.sum())
