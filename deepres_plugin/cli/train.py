"""Train a dense DeepRes model on atomic models (default: the `train` split of the data kit).

Writes OUTDIR/NAME.weights.h5 + NAME.json (model card), history.csv, loss.png and checkpoint/;
`--resume` continues an interrupted run exactly where its last finished epoch left it."""
from __future__ import annotations

import logging

PRESETS = {"standard": (1.0, 2.5, 13.0), "high": (0.5, 1.5, 6.0)}


def add_args(parser):
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--name", default="standard",
                        help="model name; 'standard' and 'high' preset sampling and range")
    parser.add_argument("--sampling", type=float, help="model voxel size (Å/px)")
    parser.add_argument("--res-min", type=float, help="lowest label (Å)")
    parser.add_argument("--res-max", type=float, help="highest label (Å)")
    parser.add_argument("--structures", nargs="+",
                        help="atomic model files to train on (default: MANIFEST train split)")
    parser.add_argument("--val-structures", nargs="+",
                        help="atomic model files for validation (default: MANIFEST val split)")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=250, help="steps per epoch")
    parser.add_argument("--batch", type=int, default=4, help="patches per step")
    parser.add_argument("--patch", type=int, default=48, help="input patch size (voxels)")
    parser.add_argument("--channels", type=int, default=16, help="trunk channels")
    parser.add_argument("--last-channels", type=int, default=48, help="last trunk layer channels")
    parser.add_argument("--noise-max", type=float, default=0.12,
                        help="largest noise SD as a fraction of the --noise-ref maximum")
    parser.add_argument("--noise-ref", choices=("map", "local"), default="map",
                        help="noise SD relative to the whole map's maximum (as real maps and "
                             "the paper's tests) or to each region's own maximum")
    parser.add_argument("--clean-fraction", type=float, default=0.2,
                        help="fraction of training maps without noise")
    parser.add_argument("--no-noise-input", action="store_true",
                        help="do not give the net the map's noise SD (measured in the solvent "
                             "at estimation time)")
    parser.add_argument("--init", metavar="MODEL",
                        help="start from this trained model's weights (standard, high or "
                             "NAME.weights.h5; same architecture): fine-tuning")
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (cosine decay)")
    parser.add_argument("--ema", type=float, default=0.998,
                        help="decay of the weight average that is validated and exported "
                             "(0 = the last step's weights)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--val-maps", type=int, default=12, help="validation maps (4 patches each)")
    parser.add_argument("--calibration-maps", type=int, default=200,
                        help="maps simulated to calibrate the model at the end (0 = none; "
                             "see `deepres calibrate`)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args):
    from ..backend.training import TrainConfig
    from ..backend.volume import InputError
    from ._common import command_line

    sampling, lo, hi = PRESETS.get(args.name, (None, None, None))
    sampling = args.sampling or sampling
    lo, hi = args.res_min or lo, args.res_max or hi
    if sampling is None or lo is None or hi is None:
        raise InputError(f"model {args.name!r} is not a preset: give --sampling, --res-min and "
                         "--res-max")
    if not 0 < lo < hi:
        raise InputError(f"resolution range {lo}–{hi} Å is empty")
    if lo < 2 * sampling:
        raise InputError(f"--res-min {lo} Å is beyond Nyquist for {sampling} Å/px "
                         f"(must be ≥ {2 * sampling} Å)")
    return TrainConfig(name=args.name, sampling=sampling, res_min=lo, res_max=hi,
                       epochs=args.epochs, steps_per_epoch=args.steps, batch=args.batch,
                       patch=args.patch, channels=args.channels,
                       last_channels=args.last_channels, noise_max=args.noise_max,
                       noise_ref=args.noise_ref, noise_input=not args.no_noise_input,
                       clean_fraction=args.clean_fraction, lr=args.lr, ema=args.ema,
                       seed=args.seed,
                       structures=args.structures, val_structures=args.val_structures,
                       val_maps=args.val_maps, threads=args.threads,
                       calibration_maps=args.calibration_maps, init=args.init,
                       command=command_line("train"))


def main(args):
    from ..backend.training import train

    cfg = config_from_args(args)
    base = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                 callback=lambda e, row: logging.getLogger("deepres.train").info(
                     "epoch %d/%d  loss %.4f  val MAE %.3f Å", e, cfg.epochs, row["loss"],
                     row["val_mae"]))
    print(f"wrote {base}.weights.h5, {base}.json, history.csv, loss.png in {args.out}")
    return 0
