"""DeepRes networks: dense == per-box evaluation, Xmipp Keras-2 HDF5 loading, safe loading."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from scipy import ndimage

from deepres_plugin.backend import models
from deepres_plugin.backend.volume import InputError


def _random_trunk_weights(net, seed):
    """He-scaled random weights (outputs of a few Å, like a trained model), random biases."""
    rng = np.random.default_rng(seed)
    net.set_weights([rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:-1])) if w.ndim > 1 else 0.5,
                                w.shape).astype(np.float32) for w in net.get_weights()])


@pytest.mark.parametrize("shape", [(26, 27, 29), (20, 40, 16)])
def test_dense_equals_per_box_unit_norm(shape):
    spec = models.DenseSpec(channels=8, last_channels=12, head=(12, 8))
    net = models.build_dense(spec)
    _random_trunk_weights(net, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32) * 5 + 1
    dense = np.asarray(net(x[None, ..., None]))[0, ..., 0]
    assert dense.shape == tuple(n - 12 for n in shape)
    centres = np.argwhere(np.ones(dense.shape, bool)) + 6
    boxes = models.unit_norm_boxes(x, centres)  # each box scaled to unit L2 norm
    per_box = net.predict(boxes, batch_size=1024, verbose=0).reshape(dense.shape)
    assert np.ptp(dense) > 0.5  # a non-trivial function of the box
    assert np.abs(per_box - dense).max() <= 1e-4


def test_noise_input_dense_equals_per_box_and_matters():
    """With the noise input the head sees noise SD / local RMS: still exactly the per-box
    evaluation (box and noise SD scaled by the box norm), scale-invariant, and not ignored."""
    spec = models.DenseSpec(channels=6, last_channels=8, head=(8,), noise_input=True)
    net = models.build_dense(spec)
    _random_trunk_weights(net, 5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((22, 23, 21)).astype(np.float32) * 3 + 0.5
    sd = 0.8
    dense = np.asarray(net(models.model_inputs(net, x[None, ..., None], [[sd]])))[0, ..., 0]
    boxes, norms = models.unit_norm_boxes(x, np.argwhere(np.ones(dense.shape, bool)) + 6,
                                          return_norms=True)
    per_box = net.predict(models.model_inputs(net, boxes, sd / norms[:, None]), batch_size=512,
                          verbose=0).reshape(dense.shape)
    assert np.abs(per_box - dense).max() <= 1e-4
    scaled = np.asarray(net(models.model_inputs(net, 37.0 * x[None, ..., None], [[37.0 * sd]])))
    assert np.abs(scaled[0, ..., 0] - dense).max() <= 1e-4
    clean = np.asarray(net(models.model_inputs(net, x[None, ..., None], [[0.0]])))[0, ..., 0]
    assert np.abs(clean - dense).mean() > 0.05


def test_shipped_dense_equals_per_box():
    for name in models.SHIPPED:
        net, _ = models.load_dense(name)
        x = np.random.default_rng(7).standard_normal((24, 25, 26)).astype(np.float32)
        dense = np.asarray(net(models.model_inputs(net, x[None, ..., None], [[0.3]])))[0, ..., 0]
        boxes, norms = models.unit_norm_boxes(x, np.argwhere(np.ones(dense.shape, bool)) + 6,
                                              return_norms=True)
        per_box = net.predict(models.model_inputs(net, boxes, 0.3 / norms[:, None]),
                              batch_size=1024, verbose=0).reshape(dense.shape)
        assert np.abs(per_box - dense).max() <= 1e-4


def test_dense_is_scale_invariant():
    net = models.build_dense(models.DenseSpec(channels=4, last_channels=6, head=(6,)))
    _random_trunk_weights(net, 1)
    x = np.random.default_rng(2).standard_normal((1, 20, 20, 20, 1)).astype(np.float32)
    a, b = np.asarray(net(x)), np.asarray(net(37.0 * x))
    assert np.abs(a - b).max() <= 1e-4


def _write_keras2_h5(path, arrays, names=("conv3d_1", "dense_1", "dense_2")):
    """An HDF5 file in the layout Keras 2 (Xmipp's model_w13.h5) writes with model.save."""
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = b"2.2.4"
        h5.attrs["backend"] = b"tensorflow"
        mw = h5.create_group("model_weights")
        layer_names = ["conv3d_1", "dropout_1", "flatten_1", "dense_1", "dropout_2", "dense_2"]
        mw.attrs["layer_names"] = [n.encode() for n in layer_names]
        for n in layer_names:
            g = mw.create_group(n)
            if n in names:
                i = names.index(n)
                wn = [f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()]
                g.attrs["weight_names"] = wn
                g.create_dataset(f"{n}/kernel:0", data=arrays[2 * i])
                g.create_dataset(f"{n}/bias:0", data=arrays[2 * i + 1])
            else:
                g.attrs["weight_names"] = []


def test_load_xmipp_keras2_h5_matches_numpy_forward(tmp_path):
    box, filters, hidden = 7, 3, 5
    rng = np.random.default_rng(4)
    arrays = [rng.normal(0, 0.2, (box, box, box, 1, filters)).astype(np.float32),
              rng.normal(0, 0.1, filters).astype(np.float32),
              rng.normal(0, 0.05, (box ** 3 * filters, hidden)).astype(np.float32),
              rng.normal(0, 0.1, hidden).astype(np.float32),
              rng.normal(0, 0.3, (hidden, 1)).astype(np.float32),
              np.array([4.0], np.float32)]
    path = tmp_path / "model_w7.h5"
    _write_keras2_h5(path, arrays)
    net = models.load_xmipp_h5(str(path))
    x = rng.standard_normal((box, box, box)).astype(np.float32)
    x /= np.linalg.norm(x)
    # reference forward pass in numpy: 'same' cross-correlation, ReLU, flatten (z,y,x,f), dense
    conv = np.stack([ndimage.correlate(x, arrays[0][..., 0, f], mode="constant") + arrays[1][f]
                     for f in range(filters)], -1)
    h = np.maximum(conv, 0).reshape(-1) @ arrays[2] + arrays[3]
    ref = np.maximum(h, 0) @ arrays[4] + arrays[5]
    got = net.predict(x[None, ..., None], verbose=0)[0, 0]
    assert got == pytest.approx(float(ref[0]), abs=1e-4)


def test_paper_architecture_is_the_published_one():
    net = models.build_paper()
    shapes = [w.shape for w in net.get_weights()]
    assert shapes == [(13, 13, 13, 1, 32), (32,), (13 ** 3 * 32, 512), (512,), (512, 1), (1,)]


def test_bad_model_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(InputError, match="model card .* missing or invalid"):
        models.load_dense(str(junk))
    (tmp_path / "junk.json").write_text(json.dumps(
        {"name": "junk", "sampling": 1.0, "res_min": 2.5, "res_max": 13.0, "kind": "dense",
         "spec": {"box": 13, "channels": 8, "last_channels": 8, "head": [8]}}))
    with pytest.raises(InputError, match="cannot load model weights"):
        models.load_dense(str(junk))
    with pytest.raises(InputError, match="not found"):
        models.load_dense(str(tmp_path / "absent.weights.h5"))
    with pytest.raises(InputError, match="not a Keras HDF5"):
        models.load_xmipp_h5(str(junk))
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    with pytest.raises(InputError, match="DeepRes paper layout"):
        models.load_xmipp_h5(str(wrong))
    (tmp_path / "evil.json").write_text(json.dumps(
        {"name": "evil", "sampling": 1.0, "res_min": 2.5, "res_max": 13.0,
         "kind": "pickle", "spec": {}}))
    (tmp_path / "evil.weights.h5").write_bytes(b"\x80\x04K\x01.")  # a pickle, never unpickled
    with pytest.raises(InputError, match="expected 'dense'"):
        models.load_dense(str(tmp_path / "evil.weights.h5"))


def test_shipped_models_load_with_cards():
    for name in models.SHIPPED:
        net, card = models.load_dense(name)
        assert card.name == name and card.kind == "dense"
        assert card.res_min >= 2 * card.sampling
        assert card.extra["command"].startswith("deepres train")
        assert not set(card.extra["train_ids"]) & set(card.extra["val_ids"])
        assert net.count_params() < 2_000_000
