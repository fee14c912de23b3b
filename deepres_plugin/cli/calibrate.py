"""Calibrate a trained model so that regions of true resolution t read t (median).

Simulates maps of atomic models (default: the `train` split of the data kit) with the model's
training recipe, records the network's answers and fits the table that `deepres estimate`
applies (stored in the model card, NAME.json, rewritten in place). `deepres train` calibrates at
its end; use this command for a model trained without it or to redo the fit."""
from __future__ import annotations

from ..backend.config import CALIBRATION_MAPS
from ._common import add_compute_args


def add_args(parser):
    parser.add_argument("model", help="standard, high, or a trained model (NAME.weights.h5)")
    parser.add_argument("--maps", type=int, default=CALIBRATION_MAPS,
                        help="simulated maps to fit on (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--structures", nargs="+",
                        help="atomic model files (default: MANIFEST train split)")
    parser.add_argument("--mask-input", action="store_true",
                        help="for a model trained without it: from now on feed it map × mask "
                             "dilated by one voxel (as Xmipp), and calibrate on such inputs")
    add_compute_args(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    from ..backend import calibration, models
    from ._common import command_line, start_tensorflow

    start_tensorflow(args)
    n_maps = args.maps
    cal = calibration.calibrate(args.model, n_maps, args.seed, args.structures,
                                progress=not args.no_progress,
                                command=command_line("calibrate"),
                                mask_input=args.mask_input)
    row = cal.median[0]
    print(f"calibrated {args.model} on {n_maps} maps: noise-free answers "
          f"{row[0]:.2f}–{row[-1]:.2f} Å for true {cal.truth[0]:.2f}–{cal.truth[-1]:.2f} Å; "
          f"wrote {models.weights_paths(args.model)[1]}")
    return 0
