"""Training: samples follow the recipe, a tiny run learns, checkpoint + resume continue exactly."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from deepres_plugin.backend import models, samples, training
from deepres_plugin.backend.volume import InputError

TRAIN_IDS = ["1a5t", "1ubi"]  # small `train` structures


def _paths(ids):
    rows = {r["id"]: r for r in samples.manifest()}
    assert all(rows[i]["split"] == "train" for i in ids)
    return [rows[i]["path"] for i in ids]


def _tiny(**kw):
    val = [r["path"] for r in samples.manifest("val") if r["id"] == "5pti"]
    args = dict(name="tiny", epochs=3, steps_per_epoch=8, batch=2, patch=32, channels=4,
                last_channels=8, head=(8,), lr=1e-2, val_maps=1, structures=_paths(TRAIN_IDS),
                val_structures=val, threads=2, calibration_maps=0)
    return training.TrainConfig(**{**args, **kw})


def test_manifest_split_is_respected():
    train_ids = {r["id"] for r in samples.manifest("train")}
    val_ids = {r["id"] for r in samples.manifest("val")}
    assert train_ids and val_ids and not train_ids & val_ids
    cfg = training.TrainConfig()
    tr, va = training._resolve_paths(cfg)
    assert {p.split("/")[-1].split(".")[0] for p in tr} == train_ids
    assert {p.split("/")[-1].split(".")[0] for p in va} == val_ids


def test_samples_have_per_voxel_labels_within_range():
    recipe = samples.SampleRecipe(sampling=1.0, res_min=2.5, res_max=13.0, patch=32,
                                  patches_per_map=4, max_groups=4)
    maker = samples.SampleMaker(recipe, _paths(TRAIN_IDS))
    rng = np.random.default_rng(5)
    labels = set()
    for _ in range(3):
        x, y, n = maker.job(rng)
        assert x.shape == (8, 32, 32, 32, 1) and y.shape == (8, 20, 20, 20, 2)
        w = y[..., 1] > 0
        assert 0.05 < w.mean() < 1.0
        lab = y[..., 0][w]
        assert lab.min() >= 2.5 and lab.max() <= 13.0
        labels |= set(np.round(np.unique(lab), 4))
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0 + 1e-6
    assert len(labels) >= 4  # several resolutions, spatially varying within maps


@pytest.mark.parametrize("ref, ratio", [("map", 1.0), ("local", 0.2)])
def test_noise_relative_to_map_or_region_maximum(ref, ratio):
    """Two regions with peaks 1.0 and 0.2: map-relative noise has the same SD in both (the
    paper's test maps); region-relative noise scales with each region's own peak."""
    recipe = samples.SampleRecipe(noise_max=0.1, noise_ref=ref, clean_fraction=0.0)
    maker = samples.SampleMaker(recipe, [])
    label = np.zeros((40, 40, 80), np.int64)
    label[..., 40:] = 1
    vol = np.zeros(label.shape, np.float32)
    vol[20, 20, 20], vol[20, 20, 60] = 1.0, 0.2
    noisy, sd = maker._add_noise(vol.copy(), label, 2, np.random.default_rng(3))
    noise = noisy - vol
    sd_a, sd_b = noise[..., :30].std(), noise[..., 50:].std()
    assert 0.0 < sd_a < 0.1
    assert sd_b / sd_a == pytest.approx(ratio, rel=0.05)
    assert sd == pytest.approx(float(np.median(noise.std(axis=(0, 1)))), rel=0.1)


def test_high_recipe_never_labels_beyond_nyquist():
    r = samples.SampleRecipe(sampling=0.9, res_min=1.5, res_max=6.0)
    assert r.res_bounds() == (1.8, 6.0)


def test_weight_average_is_bias_corrected():
    net = models.build_dense(models.DenseSpec(channels=2, last_channels=2, head=(2,)))
    w1 = net.get_weights()
    avg = training.WeightAverage(net, 0.9)
    for _ in range(3):
        avg.update(net)
    for a, b in zip(avg.weights(net), w1):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # constant weights: no shrinkage
    net.set_weights([w + 1.0 for w in w1])
    avg.update(net)
    newest = 0.1 / (1 - 0.9 ** 4)  # the newest step's share of the bias-corrected average
    for a, b in zip(avg.weights(net), w1):
        np.testing.assert_allclose(a - b, newest, rtol=1e-5, atol=1e-6)


def test_tiny_training_learns_and_resume_is_exact(tmp_path):
    full = training.train(_tiny(calibration_maps=3), str(tmp_path / "full"), progress=False)
    with open(tmp_path / "full" / "history.csv", newline="") as fh:
        hist = list(csv.DictReader(fh))
    assert len(hist) == 3
    assert float(hist[-1]["loss"]) < float(hist[0]["loss"])
    assert (tmp_path / "full" / "loss.png").stat().st_size > 5000
    card = json.loads((tmp_path / "full" / "tiny.json").read_text())
    assert card["sampling"] == 1.0 and card["epochs"] == 3
    assert set(card["train_ids"]) == set(TRAIN_IDS) and card["val_ids"] == ["5pti"]
    assert "val_mae" in card["validation"]
    assert card["calibration"]["maps"] == 3 and card["calibration"]["structures"] == TRAIN_IDS
    assert models.read_card(full + ".json").calibration() is not None

    class Stop(Exception):
        pass

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        training.train(_tiny(), str(tmp_path / "cut"), progress=False, callback=stop_after_two)
    resumed = training.train(_tiny(), str(tmp_path / "cut"), resume=True, progress=False)
    a, _ = models.load_dense(full + ".weights.h5")
    b, _ = models.load_dense(resumed + ".weights.h5")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


def test_init_starts_from_a_trained_model(tmp_path):
    """--init copies the weights (learning rate 0: the export equals them) and is recorded;
    another architecture gets the layers that fit (recorded), one sharing none is refused."""
    first = training.train(_tiny(epochs=1), str(tmp_path / "a"), progress=False)
    tuned = training.train(_tiny(epochs=1, init=first + ".weights.h5", lr=0.0),
                           str(tmp_path / "b"), progress=False)
    a, _ = models.load_dense(first + ".weights.h5")
    b, card = models.load_dense(tuned + ".weights.h5")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)
    assert card.extra["init"]["model"] == first + ".weights.h5"
    other = training.train(_tiny(epochs=1, init=first + ".weights.h5", channels=6, lr=0.0),
                           str(tmp_path / "c"), progress=False)
    c, card = models.load_dense(other + ".weights.h5")
    assert card.extra["init"]["partial"] == ["head0", "resolution"]  # the trunk no longer fits
    np.testing.assert_allclose(c.get_layer("head0").get_weights()[0],
                               a.get_layer("head0").get_weights()[0], atol=1e-6)
    with pytest.raises(InputError, match="shares no layer"):
        training.train(_tiny(epochs=1, init=first + ".weights.h5", channels=6,
                             last_channels=10, head=(7,)), str(tmp_path / "d"), progress=False)
