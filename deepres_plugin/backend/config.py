"""The parameter layer both front ends (``deepres`` CLI and the Scipion protocols) read: training
settings with their defaults, presets and validation, the dense architecture, the per-chain
resolution syntax, and :class:`InputError`.

Standard library only: ``deepres --help`` and Scipion's protocol discovery take their defaults
from here without importing numpy or TensorFlow. Argparse defaults and Scipion form defaults are
read from :class:`TrainConfig` (tests/test_params.py checks that all three agree)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields


class InputError(ValueError):
    """Bad user input; the CLI prints its message on one line and exits with code 2."""


@dataclass(frozen=True)
class Preset:
    """Sampling (Å/px) and label range (Å) of a named model."""

    sampling: float
    res_min: float
    res_max: float


#: the shipped models' settings; ``deepres train --name NAME`` takes them when not given
PRESETS = {"standard": Preset(1.0, 2.5, 13.0), "high": Preset(0.5, 1.5, 6.0),
           "coarse": Preset(2.0, 5.0, 25.0)}
CALIBRATION_MAPS = 200  # maps simulated to calibrate a model (end of training, `calibrate`)
MODEL_NAME = r"[A-Za-z0-9_.-]+"  # a model name is a file name stem
HALO = 6  # voxels of context on each side of a patch (box 13)


@dataclass
class DenseSpec:
    """Architecture of a dense model (backend/models.py); stored in the model card."""

    box: int = 13
    channels: int = 16
    last_channels: int = 48
    head: tuple = (48, 32)
    noise_input: bool = False  # second input: the map's noise SD (solvent), one per map

    @property
    def layers(self) -> int:
        return (self.box - 1) // 2

    @property
    def halo(self) -> int:
        return self.layers


_P, _D = PRESETS["standard"], DenseSpec()


@dataclass
class TrainConfig:
    """Everything a training run depends on (backend/training.py); defaults = the standard
    preset and the shipped architecture."""

    name: str = "standard"
    sampling: float = _P.sampling
    res_min: float = _P.res_min
    res_max: float = _P.res_max
    epochs: int = 16
    steps_per_epoch: int = 250
    batch: int = 4
    patch: int = 48
    noise_max: float = 0.12
    noise_ref: str = "map"
    clean_fraction: float = 0.2
    noise_input: bool = _D.noise_input  # the head sees the map's noise SD
    noise_colour: bool = True  # white, low-passed or B-shaped training noise
    global_b_fraction: float = 0.3  # training maps sharpened/blurred, labelled by resemblance
    mask_input: bool = True  # the net sees map × dilated mask (Xmipp), in training and use
    seed: int = 1
    lr: float = 1e-3
    ema: float = 0.998  # decay of the weight average (0 = export the last step's weights)
    channels: int = _D.channels
    last_channels: int = _D.last_channels
    head: tuple = _D.head
    structures: list | None = None  # model files; None = MANIFEST `train` rows
    val_structures: list | None = None  # None = MANIFEST `val` rows
    val_maps: int = 12
    threads: int = 0  # 0 = TensorFlow default
    calibration_maps: int = CALIBRATION_MAPS  # maps to calibrate the exported model (0 = none)
    init: str | None = None  # start from this trained model's weights (fine-tuning)
    command: str = ""
    extra_recipe: dict = field(default_factory=dict)

    @classmethod
    def for_name(cls, name: str, sampling=None, res_min=None, res_max=None, **kw) -> TrainConfig:
        """A checked config; sampling and range default to the preset of ``name``."""
        p = PRESETS.get(name)
        if p is None and None in (sampling, res_min, res_max):
            raise InputError(f"model {name!r} is not a preset ({', '.join(PRESETS)}): give the "
                             "sampling and the resolution range")
        cfg = cls(name=name, sampling=p.sampling if sampling is None else sampling,
                  res_min=p.res_min if res_min is None else res_min,
                  res_max=p.res_max if res_max is None else res_max, **kw)
        cfg.check()
        return cfg

    def errors(self) -> list[str]:
        """What is wrong with these settings (one sentence each; empty when fine)."""
        s, lo, hi = self.sampling, self.res_min, self.res_max
        out = []
        if not re.fullmatch(MODEL_NAME, self.name or ""):
            out.append(f"Model name {self.name!r}: use letters, digits, '_', '-' or '.' only.")
        if s is None or not s > 0:
            out.append("The voxel size (sampling) must be positive.")
        elif lo is None or lo < 2 * s:
            out.append(f"Minimum resolution {lo} Å is beyond Nyquist for {s:g} Å/px "
                       f"(must be ≥ {2 * s:g} Å).")
        if lo is not None and hi is not None and not hi > lo:
            out.append(f"Resolution range {lo}–{hi} Å is empty: the maximum must be larger "
                       "than the minimum.")
        if self.patch is None or self.patch < 2 * HALO + 4:
            out.append(f"Patch size must be at least {2 * HALO + 4} px ({HALO} px halo on "
                       "each side).")
        for label, v in (("Epochs", self.epochs), ("Steps per epoch", self.steps_per_epoch),
                         ("Batch size", self.batch), ("Validation maps", self.val_maps),
                         ("Trunk channels", self.channels),
                         ("Last trunk channels", self.last_channels)):
            if v is None or v < 1:
                out.append(f"{label} must be ≥ 1.")
        if not self.head or any(not isinstance(c, int) or c < 1 for c in self.head):
            out.append("Head layers: give positive integers separated by commas, e.g. 48,32.")
        if self.noise_ref not in ("map", "local"):
            out.append(f"Noise reference must be 'map' or 'local', not {self.noise_ref!r}.")
        for label, v in (("Clean fraction", self.clean_fraction),
                         ("Sharpened/blurred fraction", self.global_b_fraction)):
            if v is None or not 0 <= v <= 1:
                out.append(f"{label} must be between 0 and 1.")
        if self.ema is None or not 0 <= self.ema < 1:
            out.append("Weight-average decay (ema) must be in [0, 1).")
        for label, v in (("Max noise", self.noise_max), ("Learning rate", self.lr),
                         ("Calibration maps", self.calibration_maps),
                         ("Threads", self.threads)):
            if v is None or v < 0:
                out.append(f"{label} must be ≥ 0.")
        return out

    def check(self) -> None:
        """Raise InputError naming every problem of :meth:`errors`."""
        errors = self.errors()
        if errors:
            raise InputError(" ".join(errors))

    def spec(self) -> DenseSpec:
        return DenseSpec(channels=self.channels, last_channels=self.last_channels,
                         head=tuple(self.head), noise_input=self.noise_input)


TRAIN_DEFAULTS = TrainConfig()


def default(name: str):
    """Default of a :class:`TrainConfig` field (for argparse and Scipion form defaults)."""
    return getattr(TRAIN_DEFAULTS, name)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def parse_head(text: str) -> tuple:
    """``"48,32"`` → ``(48, 32)``; InputError when not positive integers."""
    try:
        head = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        head = ()
    if not head or min(head) < 1:
        raise InputError(f"Head layers {text!r}: give positive integers separated by commas, "
                         "e.g. 48,32.")
    return head


def format_head(head) -> str:
    return ",".join(str(int(c)) for c in head)


# Per-chain resolutions: one syntax, CHAIN=Å (CHAIN:Å accepted too), items separated by
# commas, semicolons or spaces.
CHAIN_SYNTAX = "CHAIN=Å pairs, e.g. A=3,B=4.5"


def parse_chain_resolutions(text: str) -> dict:
    """``"A=3,B=4.5"`` (or ``"A:3; B:4.5"``) → ``{"A": 3.0, "B": 4.5}``; InputError if bad."""
    out = {}
    for item in filter(None, re.split(r"[,;\s]+", text or "")):
        m = re.fullmatch(r"([^=:]+)[=:]([^=:]*)", item)
        try:
            if m is None:
                raise ValueError
            out[m.group(1)] = float(m.group(2))
        except ValueError:
            raise InputError(f"bad chain resolution {item!r}: use {CHAIN_SYNTAX}") from None
    if not out:
        raise InputError(f"no chain resolution given: use {CHAIN_SYNTAX}")
    return out


def chain_resolutions(chains, resolution, text):
    """The ``resolutions`` argument of :func:`~.simulate.simulate`: ``resolution`` for every
    chain when ``text`` is empty, else the chains of ``text`` (all of them in ``chains``) and
    ``resolution`` (when given) for the chains not listed."""
    if not text:
        if resolution is None:
            raise InputError("give a resolution or per-chain resolutions")
        return float(resolution)
    per_chain = parse_chain_resolutions(text)
    unknown = sorted(set(per_chain) - set(chains))
    if unknown:
        raise InputError(f"chain(s) {', '.join(unknown)} not in the model (chains: "
                         f"{', '.join(chains)})")
    if resolution is not None:
        per_chain = {c: per_chain.get(c, float(resolution)) for c in chains}
    return per_chain
