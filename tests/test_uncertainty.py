"""--uncertainty: spread from symmetric copies (coverage on a val map), OOD flags, outputs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepres_plugin.backend import estimate as E
from deepres_plugin.backend import samples, simulate
from deepres_plugin.backend import uncertainty as U
from deepres_plugin.backend.volume import InputError, Volume, read_volume, write_volume
from deepres_plugin.cli.demo import helix_bundle


@pytest.fixture(scope="module")
def bundle():
    return helix_bundle(28)


def _estimate(data, mask, model="auto", k=4, sampling=1.0):
    vol = Volume(np.asarray(data, np.float32), sampling)
    out = E.estimate(vol, mask, model)
    U.attach(out, vol, model, True, k)
    return out


def test_copies_round_trip_and_are_distinct():
    a = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    seen = set()
    for c in U.COPIES:
        t = U.to_copy(a, c)
        assert np.array_equal(U.from_copy(t, c), a)
        seen.add(t.tobytes() + bytes(t.shape))
    assert len(seen) == len(U.COPIES)
    for bad in (0, 1, 9):
        with pytest.raises(InputError, match="2 to 8 copies"):
            U.check_copies(bad)
    assert U.check_copies(0, allow_zero=True) == 0


def test_box_statistics_white_noise_and_zeros():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 40, 40)).astype(np.float32)
    st = U.box_stats(x)
    inner = np.s_[8:-8, 8:-8, 8:-8]
    # white noise: E|∇x|² = 2σ² per axis → sharpness log10(6); mean/RMS ≈ 0 ± 1/√2197
    assert abs(np.median(st["sharpness"][inner]) - np.log10(6)) < 0.02
    assert abs(np.median(st["mean_over_rms"][inner])) < 0.02
    x[:20] = 0
    st = U.box_stats(x)
    assert st["zeros"][5, 20, 20] == 1 and st["sharpness"][5, 20, 20] < -10
    # sliced evaluation (memory) gives the same flags as the whole grid at once
    limits = {"zeros": [0, 0.5], "mean_over_rms": [-0.01, 0.9], "sharpness": [-2.0, 0.77]}
    whole = {s: (v < limits[s][0]) | (v > limits[s][1]) for s, v in st.items()}
    sliced = U.out_of_range(x, limits, 13, np.ones(x.shape, bool))
    for s in U.STATS:
        assert np.array_equal(sliced[s], whole[s]), s


def test_coverage_on_a_val_map():
    """1lcd (val, 3 chains at 3/5/7 Å, noise 0.08 × max, as benchmarks/uncertainty.py): the
    truth lies within ±1 spread for 40–90 % of the masked voxels, within ±2 for more."""
    st = simulate.load_structure(os.path.join(samples.data_dir(), "structures/1lcd.cif.gz"))
    sim = simulate.simulate(st, 1.0, {"A": 3.0, "B": 5.0, "C": 7.0}, noise=0.08, seed=2)
    out = _estimate(sim.map, sim.mask)
    err = np.abs(out.resolution - sim.truth)[sim.mask]
    spread = out.uncertainty.spread[sim.mask]
    within1, within2 = np.mean(err <= spread), np.mean(err <= 2 * spread)
    assert 0.40 <= within1 <= 0.90, within1
    assert within1 + 0.1 <= within2 <= 1.0, within2
    summary = out.uncertainty.summary  # the cost is reported, not asserted (a benchmark's job)
    assert summary["copies"] == 4 and summary["seconds"] > 0 and summary["cost_ratio"] > 0


def test_spread_positive_inside_zero_outside_and_zero_patch_flagged(bundle):
    """Demo bundle with chain D replaced by exact zeros inside the mask: spread > 0 and finite
    in the mask, 0 outside; the zero patch is flagged (box statistics), the rest mostly not."""
    sim = simulate.simulate(bundle, 1.0, {"A": 3.0, "B": 4.5, "C": 6.0, "D": 8.0}, noise=0.05,
                            seed=0)
    data = sim.map.copy()
    patch = sim.truth == 8.0
    data[patch] = 0.0
    out = _estimate(data, sim.mask, "standard")
    u = out.uncertainty
    assert np.all(np.isfinite(u.spread))
    assert np.all(u.spread[sim.mask] > 0) and np.all(u.spread[~sim.mask] == 0)
    assert not np.any(u.ood & ~sim.mask)
    box = u.ood_summary["box_statistics"]["flagged_by"]
    assert box["zeros"] > 0
    assert np.mean(u.ood[patch]) > 0.5
    assert np.mean(u.ood[sim.mask & ~patch]) < 0.25
    assert u.ood_summary["voxels"] == int(u.ood.sum())
    assert sum(u.ood_summary["reasons"].values()) >= u.ood_summary["voxels"]


def test_20A_region_is_out_of_range_for_the_standard_model():
    """1mol (val): chain A at 20 Å is beyond the standard model's 13 Å: many of its voxels are
    flagged (clamped at the ceiling), chain B at 4 Å hardly any. (A thin 4-helix bundle's 20 Å
    chain reads about 10.5 Å, unclamped, and its boxes look like training boxes: not flagged.)"""
    st = simulate.load_structure(os.path.join(samples.data_dir(), "structures/1mol.cif.gz"))
    sim = simulate.simulate(st, 1.0, {"A": 20.0, "B": 4.0}, noise=0.02, seed=1)
    out = _estimate(sim.map, sim.mask, "standard", k=2)
    far = sim.truth == 20.0
    flagged, near = np.mean(out.uncertainty.ood[far]), np.mean(out.uncertainty.ood[sim.mask & ~far])
    assert flagged > 0.35 and near < 0.1, (flagged, near)
    assert out.uncertainty.ood_summary["reasons"]["ceiling"] > 0.3 * far.sum()


def test_run_writes_all_or_nothing(tmp_path, bundle):
    """run(uncertainty=2) on a non-cubic 1.3 Å/px map with a header: OUT_spread.mrc and
    OUT_ood.mrc on the input grid, JSON keys; when one file cannot be written, none is."""
    sim = simulate.simulate(bundle, 1.3, {"A": 3.0, "B": 4.5, "C": 6.0, "D": 8.0}, noise=0.05,
                            seed=3)
    vol = Volume(sim.map[:, 2:, :], 1.3, origin=(5.0, -3.0, 2.5), nstart=(1, 2, 3))
    mp, kp = tmp_path / "map.mrc", tmp_path / "mask.mrc"
    write_volume(str(mp), vol)
    write_volume(str(kp), vol, sim.mask[:, 2:, :].astype(np.float32))
    res = E.run(str(mp), str(tmp_path / "loc.mrc"), str(kp), "auto", uncertainty=2)
    assert sorted(os.listdir(tmp_path)) == ["loc.json", "loc.mrc", "loc_ood.mrc",
                                            "loc_spread.mrc", "map.mrc", "mask.mrc"]
    spread = read_volume(str(tmp_path / "loc_spread.mrc"))
    ood = read_volume(str(tmp_path / "loc_ood.mrc"))
    assert spread.origin == vol.origin and spread.nstart == vol.nstart and spread.shape == vol.shape
    assert set(np.unique(ood.data)) <= {0.0, 1.0}
    assert np.array_equal(spread.data > 0, res.mask)
    summary = json.loads((tmp_path / "loc.json").read_text())
    u, o = summary["uncertainty"], summary["ood"]
    for key in ("copies", "scale", "floor", "spread", "raw_sd", "seconds", "cost_ratio",
                "fitted_on", "file"):
        assert key in u, key
    assert u["copies"] == 2 and u["spread"]["median"] == pytest.approx(
        float(np.median(spread.data[res.mask])), rel=1e-4)
    assert set(o["reasons"]) == {"floor", "nyquist", "ceiling", "box_statistics"}
    assert o["voxels"] == int(ood.data.sum()) and "uncertainty_s" in summary["timings"]
    # the OOD file cannot be written (a folder has its name): no file of the set appears
    out2 = tmp_path / "b"
    (out2 / "loc_ood.mrc").mkdir(parents=True)
    with pytest.raises(OSError):
        E.run(str(mp), str(out2 / "loc.mrc"), str(kp), "standard", uncertainty=2)
    assert os.listdir(out2) == ["loc_ood.mrc"]


def test_cli_bad_tta_is_one_line_error(tmp_path, deepres, bundle):
    mp = tmp_path / "map.mrc"
    sim = simulate.simulate(bundle, 1.0, 5.0, seed=4)
    write_volume(str(mp), Volume(sim.map, 1.0))
    proc = deepres("estimate", mp, "-o", tmp_path / "o.mrc", "--tta", "1", "--no-progress")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--tta 1" in proc.stderr and not (tmp_path / "o.mrc").exists()


@pytest.mark.slow
def test_cli_uncertainty(tmp_path, deepres, bundle):
    sim = simulate.simulate(bundle, 1.0, {"A": 3.0, "B": 4.5, "C": 6.0, "D": 8.0}, noise=0.05,
                            seed=5)
    mp = tmp_path / "map.mrc"
    write_volume(str(mp), Volume(sim.map, 1.0))
    proc = deepres("estimate", mp, "-o", tmp_path / "loc.mrc", "--uncertainty", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "spread (4 copies)" in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ["loc.json", "loc.mrc", "loc_mask.mrc",
                                            "loc_ood.mrc", "loc_spread.mrc", "map.mrc"]
