"""Estimate the local resolution of a map with DeepRes (one map + a mask, no half maps).

Writes OUT.mrc on the input grid (same voxel size, origin and nstart; 0 outside the mask) and
OUT.json (median, mean, SD, percentiles, model, timings); without --mask, an automatic mask is
made and written as OUT_mask.mrc."""
from __future__ import annotations


def add_args(parser):
    parser.add_argument("map", help="input map (MRC/CCP4)")
    parser.add_argument("--mask", help="binary mask covering the macromolecule (MRC); "
                        "default: automatic mask")
    parser.add_argument("-o", "--out", required=True, help="output resolution map (.mrc)")
    parser.add_argument("--model", default="auto",
                        help="auto (default), standard (1.0 Å/px, 2.5–13 Å), high (0.5 Å/px, "
                             "1.5–6 Å) or a trained model file (NAME.weights.h5)")
    parser.add_argument("--histogram", metavar="PNG", help="write a histogram of the estimates")
    parser.add_argument("--slices", metavar="PNG", help="write coloured orthogonal slices")
    parser.add_argument("--chimerax", metavar="CXC", help="write a ChimeraX script that shows "
                        "the map coloured by local resolution")
    parser.add_argument("--no-calibration", action="store_true",
                        help="give the network's raw answer (skip the model's calibration)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    from ..backend.estimate import run
    from ..backend.volume import output_paths
    from ._common import check_output

    inputs = [p for p in (args.map, args.mask) if p]
    check_output(args.out, inputs=inputs)
    for path, suffix in ((args.histogram, ".png"), (args.slices, ".png"), (args.chimerax, ".cxc")):
        if path:
            check_output(path, (suffix,), inputs)
    res = run(args.map, args.out, args.mask, args.model, args.histogram, args.slices,
              args.chimerax, progress=not args.no_progress, calibrate=not args.no_calibration)
    s = res.stats
    print(f"model {res.model}: median {s['median']:.2f} Å, mean {s['mean']:.2f} Å, "
          f"SD {s['sd']:.2f} Å, 5–95 % {s['p5']:.2f}–{s['p95']:.2f} Å over {s['n_voxels']} "
          f"voxels ({res.timings['total_s']:.1f} s)")
    paths = output_paths(args.out)
    written = [paths["map"], paths["json"]] + ([paths["mask"]] if not args.mask else []) + [
        p for p in (args.histogram, args.slices, args.chimerax) if p]
    print("wrote " + ", ".join(written))
    for w in res.warnings:
        print(f"warning: {w}")
    return 0
