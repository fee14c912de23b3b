"""Train a dense DeepRes model on atomic models (default: the `train` split of the data kit).

Writes OUTDIR/NAME.weights.h5 + NAME.json (model card), history.csv, loss.png and checkpoint/;
`--resume` continues an interrupted run exactly where its last finished epoch left it."""
from __future__ import annotations

import argparse
import logging

from ..backend.config import PRESETS, InputError, format_head, parse_head
from ..backend.config import TRAIN_DEFAULTS as D
from ._common import add_compute_args


def _head(text):
    try:
        return parse_head(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: numeric options: (flag, TrainConfig field = default, help)
_NUMBERS = [
    ("--epochs", "epochs", None),
    ("--steps", "steps_per_epoch", "steps per epoch"),
    ("--batch", "batch", "patches per step"),
    ("--patch", "patch", "input patch size (voxels)"),
    ("--channels", "channels", "trunk channels"),
    ("--last-channels", "last_channels", "last trunk layer channels"),
    ("--noise-max", "noise_max", "largest noise SD as a fraction of the --noise-ref maximum"),
    ("--clean-fraction", "clean_fraction", "fraction of training maps without noise"),
    ("--global-b-fraction", "global_b_fraction",
     "fraction of training maps sharpened or blurred by a global B-factor, labelled with the "
     "resolution of the ideal map they resemble"),
    ("--lr", "lr", "initial learning rate (cosine decay)"),
    ("--ema", "ema", "decay of the weight average that is validated and exported (0 = the "
                     "last step's weights)"),
    ("--seed", "seed", None),
    ("--val-maps", "val_maps", "validation maps (4 patches each)"),
    ("--calibration-maps", "calibration_maps",
     "maps simulated to calibrate the model at the end (0 = none; see `deepres calibrate`)"),
]


def add_args(parser):
    presets = "; ".join(f"{n} {p.sampling:g} Å/px, {p.res_min:g}–{p.res_max:g} Å"
                        for n, p in PRESETS.items())
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--name", default=D.name,
                        help=f"model name; presets set sampling and range ({presets})")
    parser.add_argument("--sampling", type=float, help="model voxel size (Å/px)")
    parser.add_argument("--res-min", type=float, help="lowest label (Å)")
    parser.add_argument("--res-max", type=float, help="highest label (Å)")
    parser.add_argument("--structures", nargs="+",
                        help="atomic model files to train on (default: MANIFEST train split)")
    parser.add_argument("--val-structures", nargs="+",
                        help="atomic model files for validation (default: MANIFEST val split)")
    for flag, name, text in _NUMBERS:
        default = getattr(D, name)
        parser.add_argument(flag, type=type(default), default=default, help=text)
    parser.add_argument("--head", type=_head, default=D.head, metavar="N,N",
                        help=f"widths of the per-voxel head layers (default "
                             f"{format_head(D.head)})")
    parser.add_argument("--noise-ref", choices=("map", "local"), default=D.noise_ref,
                        help="noise SD relative to the whole map's maximum (as real maps and "
                             "the paper's tests) or to each region's own maximum")
    parser.add_argument("--noise-input", action="store_true", default=D.noise_input,
                        help="give the net the map's noise SD (measured in the solvent at "
                             "estimation time; off by default: masked and post-processed maps "
                             "have no usable solvent noise)")
    parser.add_argument("--white-noise", action="store_true", default=not D.noise_colour,
                        help="training noise always white (default: white, low-passed or "
                             "B-shaped at random)")
    parser.add_argument("--no-mask-input", action="store_true", default=not D.mask_input,
                        help="do not multiply the net's input by the dilated mask (default: "
                             "map × mask dilated by one voxel, as Xmipp's DeepRes)")
    parser.add_argument("--init", metavar="MODEL", default=D.init,
                        help="start from this trained model's weights (standard, high or "
                             "NAME.weights.h5; same architecture): fine-tuning")
    add_compute_args(parser)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args):
    """The checked :class:`TrainConfig` of the command line (presets filled in)."""
    from ..backend.config import TrainConfig
    from ._common import command_line

    numbers = {name: getattr(args, flag[2:].replace("-", "_")) for flag, name, _ in _NUMBERS}
    return TrainConfig.for_name(
        args.name, args.sampling, args.res_min, args.res_max, **numbers, head=tuple(args.head),
        noise_ref=args.noise_ref, noise_input=args.noise_input,
        noise_colour=not args.white_noise, mask_input=not args.no_mask_input,
        structures=args.structures, val_structures=args.val_structures, threads=args.threads,
        init=args.init, command=command_line("train"))


def main(args):
    from ..backend.training import train
    from ._common import start_tensorflow

    cfg = config_from_args(args)
    start_tensorflow(args)
    base = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                 callback=lambda e, row: logging.getLogger("deepres.train").info(
                     "epoch %d/%d  loss %.4f  val MAE %.3f Å", e, cfg.epochs, row["loss"],
                     row["val_mae"]))
    print(f"wrote {base}.weights.h5, {base}.json, history.csv, loss.png in {args.out}")
    return 0
