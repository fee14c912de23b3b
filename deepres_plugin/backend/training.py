"""Training loop for the dense DeepRes model: background sample producer, masked Huber loss in Å,
cosine-decayed Adam, an exponential moving average of the weights (validated and exported),
per-epoch checkpoints with exact resume, validation on `val` structures only, history CSV + loss
PNG, weights + JSON model card, then the calibration on `train` structures (calibration.py)."""
from __future__ import annotations

import csv
import json
import logging
import os
import queue
import subprocess
import threading
import time
from dataclasses import asdict

import numpy as np

from .. import constants as C
from . import models
from .config import TrainConfig  # noqa: F401  (the settings live in the parameter layer)
from .samples import SampleMaker, SampleRecipe, manifest
from .volume import InputError, OutputSet, atomic_path, atomic_write_text

log = logging.getLogger(__name__)
HUBER_DELTA = 1.0


def recipe(cfg: TrainConfig) -> SampleRecipe:
    """How the training maps of ``cfg`` are made (stored in the model card)."""
    return SampleRecipe(sampling=cfg.sampling, res_min=cfg.res_min, res_max=cfg.res_max,
                        patch=cfg.patch, noise_max=cfg.noise_max, noise_ref=cfg.noise_ref,
                        clean_fraction=cfg.clean_fraction, noise_colour=cfg.noise_colour,
                        global_b_fraction=cfg.global_b_fraction, mask_input=cfg.mask_input,
                        **cfg.extra_recipe)


def masked_huber(y_true, y_pred):
    """Huber loss (δ = 1 Å) on voxels with weight y_true[..., 1], averaged over those voxels."""
    import keras

    ops = keras.ops
    label, weight = y_true[..., 0], y_true[..., 1]
    err = ops.abs(y_pred[..., 0] - label)
    hub = ops.where(err < HUBER_DELTA, 0.5 * err * err, HUBER_DELTA * (err - 0.5 * HUBER_DELTA))
    return ops.sum(hub * weight) / ops.maximum(ops.sum(weight), 1.0)


class WeightAverage:
    """Bias-corrected exponential moving average of a model's weights. With batches of 4 patches
    single steps move the output by up to ±1 Å; the average over the last ~1/(1−decay) steps
    is what gets validated and shipped."""

    def __init__(self, model, decay: float):
        self.decay, self.n = decay, 0
        self.avg = [np.zeros(w.shape, np.float64) for w in model.get_weights()]

    def update(self, model):
        if self.decay <= 0:
            return
        self.n += 1
        for a, w in zip(self.avg, model.get_weights()):
            a *= self.decay
            a += (1.0 - self.decay) * w

    def weights(self, model) -> list:
        if self.decay <= 0 or self.n == 0:
            return model.get_weights()
        c = 1.0 - self.decay ** self.n
        return [(a / c).astype(np.float32) for a in self.avg]

    def state(self) -> dict:
        return {f"avg_{i}": a for i, a in enumerate(self.avg)} | {"n": np.array(self.n)}

    def load(self, saved):
        self.n = int(saved["n"])
        self.avg = [np.array(saved[f"avg_{i}"], np.float64) for i in range(len(self.avg))]


class _Producer(threading.Thread):
    """Fills a queue with shuffled batches; seeded per epoch so a resumed run sees the same data."""

    def __init__(self, maker: SampleMaker, cfg: TrainConfig, epoch: int):
        super().__init__(daemon=True)
        self.maker, self.cfg = maker, cfg
        self.rng = np.random.default_rng([cfg.seed, epoch])
        self.q: queue.Queue = queue.Queue(maxsize=64)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                x, y, n = self.maker.job(self.rng)
                order = self.rng.permutation(len(x))
                for i in range(0, len(order) - self.cfg.batch + 1, self.cfg.batch):
                    idx = order[i:i + self.cfg.batch]
                    while not self.stop.is_set():
                        try:
                            self.q.put((x[idx], y[idx], n[idx]), timeout=0.5)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # surfaced in the training thread
            self.error = exc

    def get(self):
        while True:
            try:
                return self.q.get(timeout=1.0)
            except queue.Empty:
                if self.error is not None:
                    raise self.error
                if not self.is_alive():
                    raise RuntimeError("sample producer stopped")


def validation_set(cfg: TrainConfig, paths: list[str]):
    """Fixed validation patches (seeded), from val structures only."""
    maker = SampleMaker(recipe(cfg), paths)
    rng = np.random.default_rng([cfg.seed, 999_999])
    xs, ys, ns = [], [], []
    for i in range(cfg.val_maps):
        x, y, n = maker.job(rng, paths[i % len(paths)])
        xs.append(x[:4])
        ys.append(y[:4])
        ns.append(n[:4])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)


def evaluate(model, x, y, n=None, batch: int = 4) -> dict:
    """Masked Huber loss, MAE and bias (Å) and MAE per label third of the range."""
    pred = np.concatenate([
        model.predict_on_batch(models.model_inputs(model, x[i:i + batch],
                                                   None if n is None else n[i:i + batch]))
        for i in range(0, len(x), batch)])
    p, t, w = pred[..., 0], y[..., 0], y[..., 1] > 0
    err = (p - t)[w]
    ae = np.abs(err)
    hub = np.where(ae < HUBER_DELTA, 0.5 * ae ** 2, HUBER_DELTA * (ae - 0.5 * HUBER_DELTA))
    out = {"val_loss": float(hub.mean()), "val_mae": float(ae.mean()), "val_bias": float(err.mean())}
    edges = np.quantile(t[w], [0, 1 / 3, 2 / 3, 1])
    for name, lo, hi in zip(("high_res", "mid_res", "low_res"), edges[:-1], edges[1:]):
        sel = (t[w] >= lo) & (t[w] <= hi)
        out[f"val_mae_{name}_{lo:.1f}-{hi:.1f}A"] = float(ae[sel].mean()) if sel.any() else None
    return out


def _code_version() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    try:
        from importlib.metadata import version
        ver = version("scipion-em-deepres")
    except Exception:  # not installed as a distribution
        ver = "unknown"
    return f"{ver}+{rev}" if rev else ver


def _resolve_paths(cfg: TrainConfig):
    train = list(cfg.structures) if cfg.structures else [r["path"] for r in manifest("train")]
    val = (list(cfg.val_structures) if cfg.val_structures
           else [r["path"] for r in manifest("val")])
    missing = [p for p in train + val if not os.path.isfile(p)]
    if missing:
        raise InputError(f"structure file(s) not found: {', '.join(missing[:3])}")
    if not train:
        raise InputError("no training structures")
    return train, val


def train(cfg: TrainConfig, out_dir: str, resume: bool = False, progress: bool = True,
          callback=None) -> str:
    """Train a dense model; returns ``<out_dir>/<name>`` (weights + card written there)."""
    cfg.check()
    train_paths, val_paths = _resolve_paths(cfg)
    version = _code_version()  # the code that trains, not whatever is checked out at the end
    ckpt = os.path.join(out_dir, C.TRAIN_CHECKPOINT)
    os.makedirs(ckpt, exist_ok=True)
    keras = models._keras()
    if cfg.threads:
        models.set_threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)
    lo, hi = recipe(cfg).res_bounds()
    model = models.build_dense(cfg.spec(), res_init=0.5 * (lo + hi))
    init_info = _initialise(model, cfg) if cfg.init else None
    total = cfg.epochs * cfg.steps_per_epoch
    sched = keras.optimizers.schedules.CosineDecay(cfg.lr, total, alpha=0.02)
    opt = keras.optimizers.Adam(sched, clipnorm=1.0)
    model.compile(optimizer=opt, loss=masked_huber)
    start, history = 0, []
    avg = WeightAverage(model, cfg.ema)
    if resume and os.path.isfile(os.path.join(ckpt, "state.json")):
        start, history = _load_checkpoint(model, opt, avg, ckpt)
        log.info("resuming at epoch %d", start + 1)
    vx, vy, vn = validation_set(cfg, val_paths)
    maker = SampleMaker(recipe(cfg), train_paths)
    t0 = time.time() - (history[-1]["seconds"] if history else 0.0)  # resumed: keep counting
    for epoch in range(start, cfg.epochs):
        prod = _Producer(maker, cfg, epoch)
        prod.start()
        losses = []
        bar = _bar(progress, cfg.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
        try:
            for _ in range(cfg.steps_per_epoch):
                x, y, n = prod.get()
                out = model.train_on_batch(models.model_inputs(model, x, n), y)
                avg.update(model)
                losses.append(float(out[0] if isinstance(out, (list, tuple)) else out))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        finally:
            prod.stop.set()
            if bar is not None:
                bar.close()
        current = model.get_weights()
        model.set_weights(avg.weights(model))
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), **evaluate(model, vx, vy, vn),
               "seconds": round(time.time() - t0, 1)}
        model.set_weights(current)
        history.append(row)
        log.info("epoch %d: loss %.4f val_loss %.4f val_mae %.3f Å", epoch + 1, row["loss"],
                 row["val_loss"], row["val_mae"])
        _save_checkpoint(model, opt, avg, ckpt, epoch + 1, history)
        _write_history(out_dir, history)
        if callback is not None:
            callback(epoch + 1, row)
    base = os.path.join(out_dir, cfg.name)
    model.set_weights(avg.weights(model))
    _export(model, cfg, base, history, train_paths, val_paths, version, init_info)
    if cfg.calibration_maps > 0:
        from .calibration import calibrate

        calibrate(base, cfg.calibration_maps, cfg.seed, train_paths, progress, cfg.command)
    return base


def _initialise(model, cfg) -> dict:
    """Copy the weights of the trained model ``cfg.init``; returns what the card records of it.
    Same architecture and sampling: all weights (fine-tuning). Otherwise only the layers whose
    names and shapes match (e.g. the trunk of a model with another head or sampling), and the
    card lists them; a model sharing no layer is refused."""
    net, card = models.load_dense(cfg.init)
    info = {"model": cfg.init, "command": card.extra.get("command", ""),
            "reproduce": card.extra.get("reproduce", []),
            "code_version": card.extra.get("code_version", ""),
            "training_seconds": card.extra.get("training_seconds", 0)}
    if asdict(card.dense_spec()) == asdict(cfg.spec()) and abs(card.sampling - cfg.sampling) < 1e-6:
        model.set_weights(net.get_weights())
        return info
    theirs = {layer.name: layer for layer in net.layers if layer.weights}
    copied = []
    for layer in model.layers:
        other = theirs.get(layer.name)
        if other is not None and [w.shape for w in other.get_weights()] == \
                [w.shape for w in layer.get_weights()] and layer.weights:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
    if not copied:
        raise InputError(f"--init model {cfg.init} shares no layer with this run's architecture "
                         f"({card.spec} vs {asdict(cfg.spec())})")
    log.info("--init %s: copied layers %s", cfg.init, ", ".join(copied))
    return info | {"partial": copied, "sampling": card.sampling}


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def _save_checkpoint(model, opt, avg, ckpt, epoch, history):
    with atomic_path(os.path.join(ckpt, "model.weights.h5"), ".weights.h5") as tmp:
        model.save_weights(tmp)
    with atomic_path(os.path.join(ckpt, "optimizer.npz"), ".npz") as tmp:
        np.savez(tmp, *[np.asarray(v) for v in opt.variables])
    with atomic_path(os.path.join(ckpt, "average.npz"), ".npz") as tmp:
        np.savez(tmp, **avg.state())
    atomic_write_text(os.path.join(ckpt, "state.json"),
                      json.dumps({"epoch": epoch, "history": history}, indent=1))


def _load_checkpoint(model, opt, avg, ckpt):
    with open(os.path.join(ckpt, "state.json"), encoding="utf-8") as fh:
        state = json.load(fh)
    model.load_weights(os.path.join(ckpt, "model.weights.h5"))
    opt.build(model.trainable_variables)
    saved = np.load(os.path.join(ckpt, "optimizer.npz"))
    for i, var in enumerate(opt.variables):
        var.assign(saved[f"arr_{i}"])
    if os.path.isfile(os.path.join(ckpt, "average.npz")):
        avg.load(np.load(os.path.join(ckpt, "average.npz")))
    return int(state["epoch"]), list(state["history"])


def _write_history(out_dir, history):
    keys = list(history[-1].keys())
    lines = [",".join(keys)] + [",".join("" if r.get(k) is None else str(r.get(k)) for k in keys)
                                for r in history]
    csv_path = os.path.join(out_dir, C.TRAIN_HISTORY)
    atomic_write_text(csv_path, "\n".join(lines) + "\n")
    plot_history(csv_path, os.path.join(out_dir, C.TRAIN_LOSS_PNG))


def plot_history(csv_path: str, png_path: str) -> str:
    """Training and validation loss (and validation MAE) per epoch, from history.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ep = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [float(r["loss"]) for r in rows], "o-", label="training loss (Huber)")
    ax.plot(ep, [float(r["val_loss"]) for r in rows], "s-", label="validation loss (val split)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(ep, [float(r["val_mae"]) for r in rows], "^--", color="tab:green",
             label="validation MAE (Å)")
    ax2.set_ylabel("MAE (Å)")
    fig.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(png_path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return png_path


def _export(model, cfg, base, history, train_paths, val_paths, version, init_info=None):
    """Weights and card, both or neither (:class:`OutputSet`)."""
    lo, hi = recipe(cfg).res_bounds()
    ids = lambda ps: sorted(os.path.basename(p).split(".")[0] for p in ps)  # noqa: E731
    card = models.ModelCard(
        name=cfg.name, sampling=cfg.sampling, res_min=lo, res_max=hi,
        spec=asdict(cfg.spec()),
        extra={"epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch, "batch": cfg.batch,
               "recipe": asdict(recipe(cfg)), "seed": cfg.seed, "lr": cfg.lr, "ema": cfg.ema,
               "train_ids": ids(train_paths), "val_ids": ids(val_paths),
               "validation": history[-1] if history else {},
               "training_seconds": history[-1]["seconds"] if history else 0,
               "command": cfg.command, "code_version": version,
               **({"init": init_info} if init_info else {}),
               "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    with OutputSet():
        with atomic_path(base + ".weights.h5", ".weights.h5") as tmp:
            model.save_weights(tmp)
        models.write_card(base + ".json", card)
