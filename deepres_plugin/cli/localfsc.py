"""Local resolution from two half maps by local FSC (BlocRes-like reference for DeepRes).

Writes OUT.mrc on the grid of half map 1 (Å, 0 outside the mask) and OUT.json (box, step,
threshold, global FSC resolution, median/percentiles); without --mask, an automatic mask is
made from the half-map average and written as OUT_mask.mrc. The FSC of each soft-windowed box
is read at --threshold (0.5, the usual choice for half maps; 0.143 reads better values)."""
from __future__ import annotations

from ._common import check_output


def add_args(parser):
    parser.add_argument("half1", help="half map 1 (MRC/CCP4)")
    parser.add_argument("half2", help="half map 2 (same grid)")
    parser.add_argument("--mask", help="binary mask (MRC); default: automatic mask")
    parser.add_argument("-o", "--out", required=True, help="output resolution map (.mrc)")
    parser.add_argument("--box", type=float, metavar="Å",
                        help="box edge in Å (default 7 × the global FSC-0.143 resolution, "
                             "at least 16 voxels)")
    parser.add_argument("--step", type=int, metavar="VOXELS",
                        help="voxels between box centres (default box/6)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="FSC threshold (default 0.5; 0.143 is the other usual one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    from ..backend.localfsc import run
    from ..backend.volume import output_paths

    check_output(args.out, inputs=[args.half1, args.half2] + ([args.mask] if args.mask else []))
    res = run(args.half1, args.half2, args.out, args.mask, args.box, args.step,
              args.threshold, progress=not args.no_progress)
    import numpy as np

    inside = res.resolution[res.mask]
    p5, p20, p50, p95 = np.percentile(inside, [5, 20, 50, 95])
    print(f"local FSC ({res.threshold:g}) with {res.box}³ boxes ({res.box_angstrom:.1f} Å, "
          f"step {res.step}): median {p50:.2f} Å, 20 % {p20:.2f} Å, 5–95 % {p5:.2f}–{p95:.2f} Å "
          f"over {inside.size} voxels; global FSC(0.143) {res.global_resolution:.2f} Å "
          f"({res.timings['total_s']:.1f} s)")
    paths = output_paths(args.out)
    written = [paths["map"], paths["json"]] + ([] if args.mask else [paths["mask"]])
    print("wrote " + ", ".join(written))
    if res.warnings:  # each was logged (stderr) when it happened
        print(f"{len(res.warnings)} warning(s), listed in {paths['json']}")
    return 0
