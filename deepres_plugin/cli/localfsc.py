"""Local resolution by local FSC (BlocRes-like reference): of two half maps, or of a map vs its
atomic model.

The reference DeepRes is compared with; without half maps, a model fitted to the map (--atoms)
takes the place of the second half map.

`deepres localfsc HALF1 HALF2` or `deepres localfsc MAP --atoms MODEL`. Writes OUT.mrc on the
grid of the first map (Å, 0 outside the mask) and OUT.json (reference, box, step, threshold,
global FSC resolution, median/percentiles); without --mask, an automatic mask is made from the
half-map average (or the map) and written as OUT_mask.mrc.

Threshold (--threshold, default 0.5 in both forms): for half maps 0.5 is the usual local
choice (0.143 reads better values). With --atoms the model's density is simulated on the map's
grid out to Nyquist with every atom at B = 0 (noise-free), so FSC_map-model ≈
sqrt(2·FSC_half / (1 + FSC_half)): 0.5 is then the half-map 0.143 criterion (0.816 would match
a half-map 0.5). The model must be fitted to the map in its frame (origin/nstart as ChimeraX
reads them): a model that does not sit in the map's density is refused."""
from __future__ import annotations

from ._common import check_output


def add_args(parser):
    parser.add_argument("half1", metavar="HALF1|MAP", help="half map 1, or the map with --atoms")
    parser.add_argument("half2", nargs="?", metavar="HALF2",
                        help="half map 2 (same grid); leave out with --atoms")
    parser.add_argument("--atoms", metavar="PDB/mmCIF",
                        help="atomic model fitted to MAP: local FSC of the map against the "
                             "model's density (no half maps needed)")
    parser.add_argument("--mask", help="binary mask (MRC); default: automatic mask")
    parser.add_argument("-o", "--out", required=True, help="output resolution map (.mrc)")
    parser.add_argument("--box", type=float, metavar="Å",
                        help="box edge in Å (default 7 × the global FSC resolution: half maps "
                             "at 0.143, map vs model at 0.5; at least 16 voxels)")
    parser.add_argument("--step", type=int, metavar="VOXELS",
                        help="voxels between box centres (default box/6)")
    parser.add_argument("--threshold", type=float,
                        help="FSC threshold (default 0.5: for half maps the usual local choice, "
                             "0.143 the other one; map vs model 0.5 = half-map 0.143)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    from ..backend.localfsc import run
    from ..backend.volume import InputError, output_paths

    if (args.half2 is None) == (args.atoms is None):
        raise InputError("give two half maps (HALF1 HALF2) or a map and its fitted model "
                         "(MAP --atoms MODEL), not " + ("both" if args.atoms else "one map alone"))
    inputs = [args.half1, args.half2 or args.atoms] + ([args.mask] if args.mask else [])
    check_output(args.out, inputs=inputs)
    res = run(args.half1, args.half2, args.out, args.mask, args.box, args.step,
              args.threshold, progress=not args.no_progress, atoms=args.atoms)
    import numpy as np

    inside = res.resolution[res.mask]
    p5, p20, p50, p95 = np.percentile(inside, [5, 20, 50, 95])
    what = "the map vs its model" if res.reference == "model" else "the half maps"
    glob = "0.5, map vs model" if res.reference == "model" else "0.143"
    print(f"local FSC ({res.threshold:g}) of {what} with {res.box}³ boxes "
          f"({res.box_angstrom:.1f} Å, step {res.step}): median {p50:.2f} Å, 20 % {p20:.2f} Å, "
          f"5–95 % {p5:.2f}–{p95:.2f} Å over {inside.size} voxels; global FSC({glob}) "
          f"{res.global_resolution:.2f} Å ({res.timings['total_s']:.1f} s)")
    paths = output_paths(args.out)
    written = [paths["map"], paths["json"]] + ([] if args.mask else [paths["mask"]])
    print("wrote " + ", ".join(written))
    if res.warnings:  # each was logged (stderr) when it happened
        print(f"{len(res.warnings)} warning(s), listed in {paths['json']}")
    return 0
