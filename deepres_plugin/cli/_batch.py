"""`deepres estimate` with several maps (or --list): the options and the run
(:mod:`deepres_plugin.backend.batch` does the work). Light at import: argparse only."""
from __future__ import annotations


def add_args(parser) -> None:
    """--list, --shard and --force (batch mode)."""
    parser.add_argument("--list", metavar="FILE",
                        help="text file of maps, one `MAP [MASK]` per line (# comments; paths "
                             "relative to the file); -o is then a folder")
    parser.add_argument("--shard", metavar="I/N",
                        help="with several maps: run maps I, I+N, I+2N, ... only (from 1; e.g. "
                             "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}) and write "
                             "summary_shardI-of-N.csv/json; `deepres summary OUT` merges them")
    parser.add_argument("--force", action="store_true",
                        help="with several maps: redo maps whose result set is complete "
                             "(default: skip them)")


def is_batch(args) -> bool:
    """Several maps, a list file or a shard: -o is a folder."""
    return len(args.map) > 1 or bool(args.list) or bool(args.shard)


def main(args) -> int:
    """Run the maps of ``args`` into the folder ``args.out``; exit 2 if any failed."""
    from ..backend import batch, report
    from ..backend.estimate import check_model
    from ..backend.volume import InputError
    from ._common import check_compute_args, start_tensorflow

    check_compute_args(args)
    shard = batch.parse_shard(args.shard) if args.shard else None
    if args.atoms:
        raise InputError("--atoms takes one map (the model must fit that map): run deepres "
                         "estimate once per map")
    entries = [(m, None) for m in args.map] + (batch.read_list(args.list) if args.list else [])
    if args.mask:  # one mask for every map whose list line gives none
        entries = [(m, k or args.mask) for m, k in entries]
    check_model(args.model)
    report.check_cmap(args.cmap or report.DEFAULT_CMAP)

    def show(row, k, n):
        print(batch.row_line(row, k, n), flush=True)

    from .estimate import uncertainty_copies

    copies = uncertainty_copies(args)
    extra = {"uncertainty": copies} if copies else {}  # only when asked: same records as before
    rows = batch.run_many(
        entries, args.out, model=args.model, calibrate=not args.no_calibration, cmap=args.cmap,
        histogram=args.histogram, slices=args.slices, chimerax=args.chimerax, force=args.force,
        shard=shard, progress=not args.no_progress, ready=lambda: start_tensorflow(args),
        on_row=show, **extra)
    return report_rows(rows, batch.summary_paths(args.out, shard))


def report_rows(rows, paths) -> int:
    """Print the counts and the summary paths; InputError (exit 2) if a map failed or is
    pending."""
    from ..backend import batch
    from ..backend.volume import InputError

    c = batch.counts(rows)
    print(f"{len(rows)} map(s): {c['ok']} done, {c['skipped']} skipped (complete), "
          f"{c['failed']} failed" + (f", {c['pending']} pending" if c["pending"] else ""))
    print("wrote " + ", ".join(paths))
    if c["failed"] or c["pending"]:
        what = " and ".join(x for x in (c["failed"] and f"{c['failed']} failed",
                                        c["pending"] and f"{c['pending']} did not run") if x)
        raise InputError(f"of {len(rows)} maps, {what} (listed in {paths[0]})")
    return 0
