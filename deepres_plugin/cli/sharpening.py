"""Oversharpening check: B-factor sweep of a map, DeepRes vs a local FSC (of the half maps,
or of the map against its fitted atomic model).

For each B (default -300:0:20 Å², negative sharpens; each with a low-pass at the global FSC
resolution), DeepRes gives the local-resolution percentiles (5/20/50/80/95 %) of the sharpened
map; the local FSC of the unsharpened half maps is computed once. The recommended B is where
DeepRes's 20th percentile meets the local FSC's 20th percentile (the output says so when they
do not meet within the range). With --atoms (a fitted atomic model), the model–map correlation
per B is added. Without half maps, --atoms is required and the reference is the local FSC of
the map against the model's density (simulated to Nyquist, every atom at B = 0; threshold 0.5
= the half-map 0.143 criterion, as the model is noise-free). Writes into OUTDIR:
sharpening.csv, sharpening.json, sharpening.png, localfsc.mrc, sharpened.mrc and deepres.mrc
(map and DeepRes map at the recommended B, or at the closest approach), mask.mrc when no --mask
is given."""
from __future__ import annotations

import re

from ._common import add_compute_args

# let `--b-range -300:0:20` (and -100,-60,0) through: argparse takes any other word that
# starts with '-' for an option (it only knows plain negative numbers)
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+[:,][-\d.:,]*$")
_ATOMIC = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


def add_args(parser):
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = _NEGATIVE
    parser.add_argument("map", help="full (unsharpened) map (MRC/CCP4)")
    parser.add_argument("--half1", help="half map 1 (same grid as the map); without half maps "
                                         "--atoms is the reference")
    parser.add_argument("--half2", help="half map 2 (same grid as the map)")
    parser.add_argument("--mask", help="binary mask (MRC); default: automatic mask")
    parser.add_argument("--atoms", metavar="PDB/mmCIF",
                        help="atomic model fitted to the map: adds the model–map CC per B; "
                             "without half maps, the reference (map-vs-model local FSC)")
    parser.add_argument("--b-range", default="-300:0:20", metavar="START:STOP:STEP",
                        help="B-factors in Å² (STOP included; or a list -100,-60,0); "
                             "default -300:0:20")
    parser.add_argument("--model", default="auto",
                        help="DeepRes network: auto, standard, high, coarse or NAME.weights.h5 "
                             "(the atomic model is --atoms)")
    parser.add_argument("--lowpass", type=float, metavar="Å",
                        help="low-pass applied with every B (default: global FSC resolution, "
                             "half maps at 0.143 or map vs model at 0.5; 0: none)")
    parser.add_argument("--box", type=float, metavar="Å", help="local-FSC box edge in Å")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="local-FSC threshold (default 0.5; map vs model: = half-map 0.143)")
    parser.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="output folder")
    add_compute_args(parser)
    parser.add_argument("--no-progress", action="store_true", help="no line per B")


def main(args):
    import os

    from ..backend.estimate import check_model
    from ..backend.sharpening import FILES, parse_range, run
    from ..backend.volume import InputError
    from ._common import check_compute_args, check_output, start_tensorflow

    parse_range(args.b_range)  # refuse a bad range before any work
    if (args.half1 is None) != (args.half2 is None):
        raise InputError("give both half maps (--half1 and --half2) or neither")
    if args.half1 is None and not args.atoms:
        raise InputError("give the half maps (--half1, --half2) or an atomic model fitted to "
                         "the map (--atoms) for a model-based local FSC")
    check_compute_args(args)
    if args.model.lower().endswith(_ATOMIC):
        raise InputError(f"--model {args.model} looks like an atomic model: give it with --atoms "
                         "(--model is the DeepRes network)")
    check_model(args.model)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"output folder {args.out} is a file")
    check_output(os.path.join(args.out, FILES["csv"]), suffixes=())

    def show(i, b, row):
        cc = f", CC {row['cc']:.4f}" if "cc" in row else ""
        print(f"B {b:8.1f} Å²: DeepRes 20 % {row['p20']:.2f} Å, median {row['p50']:.2f} Å{cc}",
              flush=True)

    start_tensorflow(args)
    res = run(args.map, args.half1, args.half2, args.out, args.mask, args.atoms, args.b_range,
              args.model, args.box, args.threshold, args.lowpass,
              None if args.no_progress else show)
    what = "the map vs its model" if res.reference == "model" else "the half maps"
    print(f"local FSC ({res.threshold:g}, {res.localfsc_box:.0f} Å boxes) of {what}: "
          f"20 % {res.localfsc['p20']:.2f} Å, median {res.localfsc['p50']:.2f} Å")
    print(("recommended B: " if res.met else "no recommendation: ") + res.message)
    written = [os.path.join(args.out, FILES[k]) for k in
               ("csv", "json", "plot", "localfsc", "sharpened", "deepres")]
    if not args.mask:
        written.append(os.path.join(args.out, FILES["mask"]))
    print("wrote " + ", ".join(written))
    if res.warnings:  # each was logged when it happened
        print(f"{len(res.warnings)} warning(s), listed in {written[1]}")
    return 0
