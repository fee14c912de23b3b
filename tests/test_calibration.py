"""Calibration: the fitted table inverts a known bias, stays monotone, is read safely from a
card, and both shipped models carry one that `estimate` applies (raw on request)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from deepres_plugin.backend import calibration, models
from deepres_plugin.backend.estimate import estimate
from deepres_plugin.backend.volume import InputError, Volume


def _biased(rng, n):
    """Answers that read worse with noise: p = t + 0.15·(t − 2.5)·(u/0.7) + scatter."""
    t = rng.uniform(2.5, 13.0, n)
    u = rng.choice([0.0, 0.7], n)
    p = t + 0.15 * (t - 2.5) * (u / 0.7) + rng.normal(0, 0.4, n)
    return p, t, u


def test_fit_inverts_a_known_bias():
    rng = np.random.default_rng(0)
    cal = calibration.fit(*_biased(rng, 400_000), 2.5, 13.0)
    p, t, u = _biased(rng, 400_000)
    out = cal.apply(p, u)
    for level in (0.0, 0.7):
        for truth in (4.0, 7.0, 10.0):
            sel = (u == level) & (np.abs(t - truth) < 0.1)
            assert abs(np.median(out[sel]) - truth) < 0.12
    noisy7 = (u == 0.7) & (np.abs(t - 7.0) < 0.1)
    assert np.median(p[noisy7]) - 7.0 > 0.6  # the raw answer was off


def test_apply_is_monotone_and_continuous():
    rng = np.random.default_rng(1)
    cal = calibration.fit(*_biased(rng, 200_000), 2.5, 13.0)
    grid = np.linspace(1.0, 15.0, 500)
    for level in (0.0, 0.2, 0.7, 2.0):
        assert np.all(np.diff(cal.apply(grid, level)) > 0)
    a, b = cal.apply(grid, 0.3499), cal.apply(grid, 0.3501)
    assert np.abs(a - b).max() < 1e-2
    assert cal.apply(np.array([20.0]), 0.0)[0] > 13.0  # beyond the table: 1:1, clamped later


def test_box_rms_is_the_model_normaliser():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 21, 22)).astype(np.float32)
    rms = calibration.box_rms(x)
    assert rms.shape == (8, 9, 10)
    assert rms[3, 4, 5] == pytest.approx(np.sqrt(np.mean(x[3:16, 4:17, 5:18] ** 2)), rel=1e-4)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("median"), "invalid"),
    (lambda d: d.update(median=[row[::-1] for row in d["median"]]), "order"),
    (lambda d: d.update(nsr_nodes=d["nsr_nodes"][:-1]), "shapes"),
    (lambda d: d.update(truth="abc"), "invalid"),
])
def test_bad_tables_are_refused(change, message):
    d = models.read_card(models.weights_paths("standard")[1]).extra["calibration"]
    d = json.loads(json.dumps(d))
    change(d)
    with pytest.raises(InputError, match=message):
        calibration.Calibration.from_dict(d)


def test_shipped_standard_is_calibrated_and_applied(st_5pti):
    """The card's table (checked below, with `high`'s) is applied by default, raw on request."""
    from deepres_plugin.backend.simulate import simulate

    sim = simulate(st_5pti, 1.0, 7.0, noise=0.08, seed=1)
    on = estimate(Volume(sim.map, 1.0), sim.mask, "standard")
    off = estimate(Volume(sim.map, 1.0), sim.mask, "standard", calibrate=False)
    assert on.calibrated and not off.calibrated
    assert np.all(on.resolution[~sim.mask] == 0)
    diff = np.abs(on.resolution - off.resolution)[sim.mask]
    assert 0.05 < diff.mean() < 2.0


@pytest.mark.parametrize("name", ["standard", "high", "coarse"])
def test_shipped_tables_fit_their_model(name):
    """Every shipped card carries a table fitted on `train` structures only, inside its range,
    answering close to the truth (row u = 0); without a noise input the table is one curve
    (all rows equal): no noise measurement feeds the answer."""
    card = models.read_card(models.weights_paths(name)[1])
    cal, meta = card.calibration(), card.extra["calibration"]
    assert cal is not None and meta["maps"] >= 200
    assert set(meta["structures"]) <= set(card.extra["train_ids"])
    assert not set(meta["structures"]) & set(card.extra["val_ids"])
    assert card.res_min <= cal.truth[0] and cal.truth[-1] <= card.res_max
    assert np.all(np.abs(cal.median[0] - cal.truth) < 0.3 * cal.truth)  # coarse: 7.1 at 5.5
    assert not card.dense_spec().noise_input
    assert np.all(cal.median == cal.median[0])


def test_calibrate_a_copy_of_a_model(tmp_path):
    """`calibrate` rewrites the copy's card only; estimate then uses the new table."""
    from deepres_plugin.backend import samples

    for suffix in (".weights.h5", ".json"):
        shutil.copy(models.weights_paths("standard")[0 if suffix == ".weights.h5" else 1],
                    tmp_path / f"copy{suffix}")
    card = json.loads((tmp_path / "copy.json").read_text())
    card.pop("calibration", None)
    (tmp_path / "copy.json").write_text(json.dumps(card))
    rows = {r["id"]: r for r in samples.manifest()}
    paths = [rows[i]["path"] for i in ("1a5t", "1ubi")]
    cal = calibration.calibrate(str(tmp_path / "copy.weights.h5"), n_maps=3, seed=2,
                                structures=paths)
    written = models.read_card(str(tmp_path / "copy.json"))
    assert written.extra["calibration"]["structures"] == ["1a5t", "1ubi"]
    np.testing.assert_allclose(written.calibration().median, cal.median, atol=1e-3)
    assert np.all(np.diff(cal.median, axis=1) > 0)
