"""DeepRes networks (Keras 3, TensorFlow backend; imported lazily).

* ``paper``: the published net, one unit-norm 13³ box → resolution (reference; loads Xmipp's
  Keras-2 HDF5 files ``model_w13.h5`` / ``model_w7.h5``).
* ``dense``: the same question answered for every voxel at once. A bias-free ReLU trunk of
  valid 3³ convolutions (receptive field exactly ``box``³) is positively homogeneous, so dividing
  its features by the local norm sqrt(box³-sum of x²) equals evaluating each unit-norm box
  separately; a per-voxel head (1×1×1 convolutions with biases) then gives the resolution.
  With ``noise_input`` the head also sees the map's noise SD divided by the same local RMS
  (the box's noise-to-signal ratio, scale-invariant too): noise and blur both change a box's
  spectrum, and telling the net how much noise there is lets it tell the two apart.
"""
from __future__ import annotations

import os

import numpy as np

from .registry import (SHIPPED, WEIGHTS_DIR, DenseSpec, ModelCard,  # noqa: F401  (re-exported)
                       read_card, shipped_base, weights_paths, write_card)
from .volume import InputError

NORM_EPS = 1e-6


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN kernels on only for some CPUs; on this project's AMD machines
    # they make 3-D convolutions 2.5-4.5x faster (measured), so ask for them unless the user chose
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras

    return keras


def set_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` CPU threads (must come before its first use)."""
    _keras()
    import logging

    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process: keep its threads
        logging.getLogger(__name__).warning(
            "TensorFlow is already initialised: --threads %d ignored", threads)


def _box_sum_layer(keras, box: int):
    """Sum over a box³ neighbourhood ('valid'), as three separable ones-convolutions."""
    ops = keras.ops

    class BoxSum(keras.layers.Layer):
        def call(self, x):
            k = ops.ones((box, 1, 1, 1, 1), dtype=x.dtype)
            for kernel in (k, ops.reshape(k, (1, box, 1, 1, 1)), ops.reshape(k, (1, 1, box, 1, 1))):
                x = ops.conv(x, kernel, padding="valid")
            return x

    return BoxSum(name="box_sum")


def build_dense(spec: DenseSpec, res_init: float = 7.0):
    """Dense DeepRes model: input (D, H, W, 1) [+ noise SD (1,) with ``noise_input``] →
    resolution (D−box+1, H−box+1, W−box+1, 1)."""
    keras = _keras()
    L = keras.layers
    inp = keras.Input((None, None, None, 1), name="map")
    x = inp
    for i in range(spec.layers):
        c = spec.last_channels if i == spec.layers - 1 else spec.channels
        x = L.Conv3D(c, 3, padding="valid", use_bias=False, activation="relu", name=f"trunk{i}")(x)
    # box RMS (not the norm): same per-box invariance, but features of order 1, so that the head
    # reaches the Å range with ordinary weights
    rms = keras.ops.sqrt(_box_sum_layer(keras, spec.box)(keras.ops.square(inp)) / spec.box ** 3
                         + NORM_EPS ** 2)
    x = x / rms
    inputs = inp
    if spec.noise_input:
        noise = keras.Input((1,), name="noise")
        nsr = L.Reshape((1, 1, 1, 1))(noise) / rms
        x = keras.ops.concatenate([x, nsr], axis=-1)
        inputs = [inp, noise]
    for i, c in enumerate(spec.head):
        x = L.Conv3D(c, 1, activation="relu", name=f"head{i}")(x)
    out = L.Conv3D(1, 1, name="resolution",
                   bias_initializer=keras.initializers.Constant(res_init))(x)
    return keras.Model(inputs, out, name="deepres_dense")


def model_inputs(net, x: np.ndarray, noise=None):
    """What ``net`` is called with: the map batch, plus the noise SDs (N, 1) if it takes them."""
    if len(net.inputs) == 1:
        return x
    n = np.zeros((len(x), 1), np.float32) if noise is None else noise
    return [x, np.asarray(n, np.float32).reshape(len(x), 1)]


def build_paper(box: int = 13, filters: int = 32, hidden: int = 512, dropout: float = 0.2):
    """The published DeepRes net: Conv3D(32, box³, same, ReLU) → Dropout → Flatten →
    Dense(512, ReLU) → Dropout → Dense(1). Input one unit-norm box."""
    keras = _keras()
    L = keras.layers
    return keras.Sequential([
        keras.Input((box, box, box, 1)),
        L.Conv3D(filters, box, padding="same", activation="relu", name="conv3d_1"),
        L.Dropout(dropout, name="dropout_1"),
        L.Flatten(name="flatten_1"),
        L.Dense(hidden, activation="relu", name="dense_1"),
        L.Dropout(dropout, name="dropout_2"),
        L.Dense(1, name="dense_2"),
    ], name="deepres_paper")


def load_xmipp_h5(path: str):
    """Build the paper net from Xmipp's Keras-2 HDF5 file (weights read as plain arrays with
    h5py, nothing deserialised). The box size is read off the first kernel."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in root.attrs.get("layer_names", list(root.keys()))]
            arrays = []
            for name in names:
                g = root[name]
                wn = [n.decode() if isinstance(n, bytes) else n
                      for n in g.attrs.get("weight_names", [])]
                arrays += [np.asarray(g[w]) for w in wn]
    except (OSError, KeyError) as exc:
        raise InputError(f"{path} is not a Keras HDF5 DeepRes model ({exc})") from None
    if len(arrays) != 6 or arrays[0].ndim != 5:
        raise InputError(f"{path} does not hold the DeepRes paper layout "
                         f"(conv3d + dense + dense; found {len(arrays)} arrays)")
    box, filters, hidden = arrays[0].shape[0], arrays[0].shape[-1], arrays[2].shape[1]
    model = build_paper(box, filters, hidden)
    try:
        model.set_weights(arrays)
    except ValueError as exc:
        raise InputError(f"{path}: weights do not fit the DeepRes paper net ({exc})") from None
    return model


def unit_norm_boxes(data: np.ndarray, centres: np.ndarray, box: int = 13,
                    return_norms: bool = False):
    """Boxes of size box³ centred on ``centres`` (N, 3 as z, y, x), each scaled to unit L2 norm
    (zero-padded at the map border); with ``return_norms`` also the norms (N,)."""
    h = box // 2
    padded = np.pad(data, h)
    off = np.arange(-h, h + 1)
    z = centres[:, 0, None, None, None] + h + off[None, :, None, None]
    y = centres[:, 1, None, None, None] + h + off[None, None, :, None]
    x = centres[:, 2, None, None, None] + h + off[None, None, None, :]
    boxes = padded[z, y, x].astype(np.float32)
    norms = np.sqrt((boxes ** 2).sum(axis=(1, 2, 3), keepdims=True) + NORM_EPS ** 2)
    if return_norms:
        return (boxes / norms)[..., None], norms.reshape(-1)
    return (boxes / norms)[..., None]


def load_dense(name_or_path: str):
    """(keras model, card) for a shipped model name or a trained model path."""
    wpath, cpath = weights_paths(name_or_path)
    if not os.path.isfile(wpath):
        raise InputError(f"model weights not found: {wpath}")
    card = read_card(cpath)
    if card.kind != "dense":
        raise InputError(f"model {name_or_path} is of kind {card.kind!r}, expected 'dense'")
    try:
        model = build_dense(card.dense_spec())
        model.load_weights(wpath)
    except Exception as exc:  # h5py/keras raise many types for corrupt or foreign files
        raise InputError(f"cannot load model weights {wpath} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return model, card
