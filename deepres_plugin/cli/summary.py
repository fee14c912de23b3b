"""Merge the shard summaries of a sharded batch run into one table (OUT/summary.csv, .json).

After `deepres estimate --list MAPS -o OUT --shard I/N` has run for I = 1..N (e.g. a SLURM
array job), `deepres summary OUT` joins OUT/summary_shardI-of-N.csv/json in list order. It
refuses missing shards, shards of different splits or lists; exit code 2 also when a map
failed or was not run (its shard was interrupted), after writing the table."""
from __future__ import annotations


def add_args(parser):
    parser.add_argument("out", help="the output folder of the sharded `deepres estimate` runs")


def main(args):
    from ..backend import batch
    from ._batch import report_rows

    rows, paths = batch.merge(args.out)
    for row in rows:
        print(batch.row_line(row))
    return report_rows(rows, paths)
