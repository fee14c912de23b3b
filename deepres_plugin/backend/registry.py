"""Model registry: the shipped models, where their files are (``$DEEPRES_WEIGHTS`` first, then
the package's ``weights/``), and their JSON cards (:class:`ModelCard`, with the architecture and
the calibration table). The CLI, the Scipion protocols and the backend all find models here.

numpy only (no TensorFlow): Scipion's protocol discovery may import it."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import constants as C
from .config import DenseSpec, InputError
from .volume import atomic_write_text

WEIGHTS_DIR = C.WEIGHTS_DIR
SHIPPED = C.SHIPPED_MODELS
_CARD_KEYS = ("name", "sampling", "res_min", "res_max", "kind", "spec")


@dataclass
class Calibration:
    nsr_nodes: np.ndarray  # (J,) noise-to-signal ratios, increasing, first 0
    truth: np.ndarray  # (K,) true resolutions (Å), increasing
    median: np.ndarray  # (J, K) median raw answer, strictly increasing along K

    def apply(self, pred: np.ndarray, nsr: np.ndarray | float) -> np.ndarray:
        """Calibrated resolution (Å) for raw answers ``pred`` at noise-to-signal ``nsr``."""
        pred = np.asarray(pred, np.float32)
        nodes = self.nsr_nodes
        u = np.clip(np.broadcast_to(np.asarray(nsr, np.float32), pred.shape), 0, nodes[-1])
        j = np.clip(np.searchsorted(nodes, u, side="right") - 1, 0, len(nodes) - 2)
        w = (u - nodes[j]) / (nodes[j + 1] - nodes[j])
        out = np.zeros(pred.shape, np.float32)
        for jj in range(len(nodes)):  # J table rows, each vectorised over the voxels
            weight = np.where(j == jj, 1 - w, 0) + np.where(j + 1 == jj, w, 0)
            if not weight.any():
                continue
            out += weight * self.inverse(jj, pred)
        return out

    def inverse(self, row: int, pred: np.ndarray) -> np.ndarray:
        """m⁻¹ of one table row; beyond the table the answer moves 1:1 with ``pred``."""
        m, t = self.median[row], self.truth
        g = np.interp(pred, m, t)
        g = np.where(pred < m[0], t[0] + (pred - m[0]), g)
        return np.where(pred > m[-1], t[-1] + (pred - m[-1]), g).astype(np.float32)

    def to_dict(self) -> dict:
        return {"nsr_nodes": [float(v) for v in self.nsr_nodes],
                "truth": [float(v) for v in self.truth],
                "median": [[round(float(v), 4) for v in row] for row in self.median]}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Read and check a card's ``calibration`` entry (InputError when malformed)."""
        try:
            nodes = np.asarray(d["nsr_nodes"], np.float64)
            truth = np.asarray(d["truth"], np.float64)
            med = np.asarray(d["median"], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model card calibration is invalid ({exc})") from None
        ok = (nodes.ndim == 1 and len(nodes) >= 2 and truth.ndim == 1 and len(truth) >= 2
              and med.shape == (len(nodes), len(truth)) and np.all(np.isfinite(med))
              and np.all(np.diff(nodes) > 0) and np.all(np.diff(truth) > 0)
              and np.all(np.diff(med, axis=1) > 0))
        if not ok:
            raise InputError("model card calibration is invalid (table shapes or order)")
        return cls(nodes, truth, med)


@dataclass
class ModelCard:
    """What a trained model is for; written as ``<name>.json`` beside ``<name>.weights.h5``."""

    name: str
    sampling: float
    res_min: float
    res_max: float
    kind: str = "dense"
    spec: dict = field(default_factory=lambda: asdict(DenseSpec()))
    extra: dict = field(default_factory=dict)

    def calibration(self) -> Calibration | None:
        """The card's calibration table, or None when it has none."""
        d = self.extra.get("calibration")
        return None if d is None else Calibration.from_dict(d)

    def dense_spec(self) -> DenseSpec:
        d = dict(self.spec)
        d["head"] = tuple(d.get("head", DenseSpec.head))
        return DenseSpec(**d)


def shipped_base(name: str) -> str:
    """``<dir>/<name>`` of a shipped model: the folder in $DEEPRES_WEIGHTS when it holds that
    model's weights, else the package's own weights/ folder."""
    override = os.environ.get(C.DEEPRES_WEIGHTS_VAR)
    if override and os.path.isfile(os.path.join(override, name + ".weights.h5")):
        return os.path.join(override, name)
    return os.path.join(WEIGHTS_DIR, name)


def weights_paths(name_or_path: str) -> tuple[str, str]:
    """(weights .h5, card .json) for a shipped model name or a user path to either file."""
    if name_or_path in SHIPPED:
        base = shipped_base(name_or_path)
    else:
        base = name_or_path
        for suffix in (".weights.h5", ".json"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
    return base + ".weights.h5", base + ".json"


def read_card(path: str) -> ModelCard:
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        return ModelCard(**{k: d[k] for k in _CARD_KEYS if k in d},
                         extra={k: v for k, v in d.items() if k not in _CARD_KEYS})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(f"model card {path} is missing or invalid ({exc})") from None


def write_card(path: str, card: ModelCard) -> None:
    d = {"name": card.name, "sampling": card.sampling, "res_min": card.res_min,
         "res_max": card.res_max, "kind": card.kind, "spec": card.spec, **card.extra}
    atomic_write_text(path, json.dumps(d, indent=2, default=float) + "\n")


def available() -> list[str]:
    """The shipped models whose weights are installed."""
    return [n for n in SHIPPED if os.path.isfile(weights_paths(n)[0])]


def card_data(name_or_path: str) -> dict | None:
    """The raw JSON card of a shipped model, a trained model's ``<base>`` (or either file), or
    of ``auto`` (the installed shipped model reaching the worst resolution); None if missing."""
    if name_or_path == "auto":
        cards = [c for c in map(card_data, available()) if c is not None]
        return max(cards, key=lambda c: float(c.get("res_max", 0)), default=None)
    try:
        with open(weights_paths(name_or_path)[1], encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
