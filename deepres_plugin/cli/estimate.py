"""Estimate the local resolution of a map with DeepRes (one map + a mask, no half maps).

Writes OUT.mrc on the input grid (same voxel size, origin and nstart; 0 outside the mask) and
OUT.json (median, mean, SD, percentiles, model, timings); without --mask, an automatic mask is
made and written as OUT_mask.mrc."""
from __future__ import annotations

from ._common import add_compute_args


def add_args(parser):
    parser.add_argument("map", help="input map (MRC/CCP4)")
    parser.add_argument("--mask", help="binary mask covering the macromolecule (MRC); "
                        "default: automatic mask")
    parser.add_argument("-o", "--out", required=True, help="output resolution map (.mrc)")
    parser.add_argument("--model", default="auto",
                        help="auto (default: standard, fused with coarse where both read "
                             "worse than about 7–10 Å and with high where it reads better than "
                             "4.5–5.5 Å when needed), standard (1.0 Å/px, 2.5–13 Å), high "
                             "(0.5 Å/px, 1.5–6 Å), coarse (2.0 Å/px, 5–25 Å) or a trained "
                             "model file (NAME.weights.h5)")
    parser.add_argument("--histogram", metavar="PNG", help="write a histogram of the estimates")
    parser.add_argument("--slices", metavar="PNG", help="write coloured orthogonal slices")
    parser.add_argument("--chimerax", metavar="CXC", help="write a ChimeraX script that shows "
                        "the map coloured by local resolution")
    parser.add_argument("--atoms", metavar="MODEL", help="atomic model fitted to the map "
                        "(PDB/mmCIF, any format gemmi reads, in the map's frame): also write "
                        "OUT_residues.cif|pdb (median per residue in the B-factor column), "
                        "OUT_residues.csv, OUT_residues.png and OUT_residues.cxc")
    parser.add_argument("--cmap", default=None, metavar="NAME",
                        help="matplotlib colour map of the histogram, slices and ChimeraX "
                             "script (default viridis: perceptually uniform, dark = best)")
    parser.add_argument("--no-calibration", action="store_true",
                        help="give the network's raw answer (skip the model's calibration)")
    add_compute_args(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress lines (on stderr; a bar for tiles on a terminal)")


def main(args):
    from ..backend import report
    from ..backend.estimate import check_model, run
    from ._common import check_compute_args, check_output, start_tensorflow

    check_compute_args(args)
    inputs = [p for p in (args.map, args.mask) if p]
    check_output(args.out, inputs=inputs)
    for path, suffix in ((args.histogram, ".png"), (args.slices, ".png"), (args.chimerax, ".cxc")):
        if path:
            check_output(path, (suffix,), inputs)
    check_model(args.model)
    report.check_cmap(args.cmap or report.DEFAULT_CMAP)
    res = run(args.map, args.out, args.mask, args.model, args.histogram, args.slices,
              args.chimerax, progress=not args.no_progress, calibrate=not args.no_calibration,
              cmap=args.cmap, ready=lambda: start_tensorflow(args), atoms=args.atoms)
    s = res.stats
    print(f"model {res.model}: median {s['median']:.2f} Å, mean {s['mean']:.2f} Å, "
          f"SD {s['sd']:.2f} Å, 5–95 % {s['p5']:.2f}–{s['p95']:.2f} Å over {s['n_voxels']} "
          f"voxels ({res.timings['total_s']:.1f} s)")
    print("wrote " + ", ".join(res.files))
    if res.warnings:  # each was logged (stderr) when it happened
        print(f"{len(res.warnings)} warning(s), listed in {res.files[1]}")
    return 0
