"""Estimate the local resolution of a map with DeepRes (one map + a mask, no half maps).

Writes OUT.mrc on the input grid (same voxel size, origin and nstart; 0 outside the mask) and
OUT.json (median, mean, SD, percentiles, model, timings); without --mask, an automatic mask is
made and written as OUT_mask.mrc.

Several maps (or --list FILE): -o is a folder; each map's results go to OUT/NAME/NAME_locres.*
(NAME: the map's file name without extensions), the picture options name files in that folder,
--mask is the mask of every map whose list line gives none, and OUT/summary.csv + summary.json
list every map (voxel size, median, percentiles, clamp fraction, model, time, status). Maps
whose result set is complete are skipped (--force redoes them); a map that fails is listed
with its error and the others go on (exit code 2 at the end)."""
from __future__ import annotations

from . import _batch
from ._common import add_compute_args


def add_args(parser):
    parser.add_argument("map", nargs="*", metavar="MAP", help="input map(s) (MRC/CCP4)")
    parser.add_argument("--mask", help="binary mask covering the macromolecule (MRC); "
                        "default: automatic mask")
    parser.add_argument("-o", "--out", required=True, help="output resolution map (.mrc); "
                        "with several maps or --list: the output folder")
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
    parser.add_argument("--uncertainty", action="store_true",
                        help="also write OUT_spread.mrc (Å: ±1 spread covers the truth for about "
                             "68 %% of voxels on simulated maps) from the estimate rerun on "
                             "flipped/transposed copies of the map, and OUT_ood.mrc (1 = voxel "
                             "clamped or unlike the training data); summaries in OUT.json")
    parser.add_argument("--tta", type=int, default=None, metavar="K",
                        help="copies of the map for --uncertainty, 2–8 (default 4; implies "
                             "--uncertainty); the run takes about K times as long")
    add_compute_args(parser)
    _batch.add_args(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress lines (on stderr; a bar for tiles on a terminal)")


def main(args):
    from ..backend import report
    from ..backend.estimate import check_model, run
    from ._common import check_compute_args, check_output, start_tensorflow

    if _batch.is_batch(args):
        return _batch.main(args)
    if not args.map:
        from ..backend.volume import InputError

        raise InputError("give a map (or several, or --list FILE)")
    args.map = args.map[0]
    check_compute_args(args)
    inputs = [p for p in (args.map, args.mask) if p]
    check_output(args.out, inputs=inputs)
    for path, suffix in ((args.histogram, ".png"), (args.slices, ".png"), (args.chimerax, ".cxc")):
        if path:
            check_output(path, (suffix,), inputs)
    check_model(args.model)
    report.check_cmap(args.cmap or report.DEFAULT_CMAP)
    copies = uncertainty_copies(args)
    res = run(args.map, args.out, args.mask, args.model, args.histogram, args.slices,
              args.chimerax, progress=not args.no_progress, calibrate=not args.no_calibration,
              cmap=args.cmap, ready=lambda: start_tensorflow(args), atoms=args.atoms,
              uncertainty=copies)
    s = res.stats
    print(f"model {res.model}: median {s['median']:.2f} Å, mean {s['mean']:.2f} Å, "
          f"SD {s['sd']:.2f} Å, 5–95 % {s['p5']:.2f}–{s['p95']:.2f} Å over {s['n_voxels']} "
          f"voxels ({res.timings['total_s']:.1f} s)")
    if res.uncertainty:
        u, o = res.uncertainty.summary, res.uncertainty.ood_summary
        print(f"spread ({u['copies']} copies): median {u['spread']['median']:.2f} Å; "
              f"{o['voxels']} voxels ({100 * o['fraction']:.1f} %) flagged out of distribution")
    print("wrote " + ", ".join(res.files))
    if res.warnings:  # each was logged (stderr) when it happened
        print(f"{len(res.warnings)} warning(s), listed in {res.files[1]}")
    return 0


def uncertainty_copies(args) -> int:
    """K for --uncertainty/--tta (0: off); InputError when --tta is out of range."""
    from ..backend.uncertainty import DEFAULT_COPIES, check_copies

    if getattr(args, "tta", None) is not None:
        return check_copies(args.tta)
    return DEFAULT_COPIES if getattr(args, "uncertainty", False) else 0
