"""Many maps in one run: one result set per map and one summary table (no Scipion).

Each map gets a folder OUT/NAME/ (NAME: the file name without .mrc/.map/.gz …, made unique in
list order) holding NAME_locres.mrc, NAME_locres.json, NAME_locres_mask.mrc (automatic mask)
and the pictures asked for, then ``done.json``, written after the set: the inputs (path, size,
modification time), the options, the files and the summary row. A rerun skips a map whose
record matches (same inputs and options, every file there, the result JSON naming the same
input); ``force`` redoes it. A map that fails is recorded with its one-line message and the
others go on. OUT/summary.csv and OUT/summary.json are rewritten (atomically) after every map,
maps not yet run marked ``pending``. A shard ``(I, N)`` takes maps I, I+N, … of the whole list
and writes summary_shardI-of-N.csv/json instead; :func:`merge` joins the shards."""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import logging
import os
import re
import shlex
import time
from dataclasses import dataclass

from .volume import InputError, OutputSet, atomic_write_text, output_paths

log = logging.getLogger(__name__)
RECORD = "done.json"
COLUMNS = ["index", "map", "name", "status", "sampling", "median", "p5", "p25", "p75", "p95",
           "clamp_fraction", "model", "models", "n_voxels", "seconds", "warnings", "mask",
           "output", "error"]
PACKED = (".gz", ".bz2", ".xz")
PICTURES = {"histogram": ".png", "slices": ".png", "chimerax": ".cxc"}
_SHARD_FILE = re.compile(r"summary_shard(\d+)-of-(\d+)\.json$")


class _StartError(Exception):
    """``ready()`` failed: not a fault of one map, so the whole run stops."""


@dataclass
class Job:
    """One map of the list: its 1-based place in the whole list, paths and unique NAME."""
    index: int
    map: str
    mask: str | None
    name: str

    def out_path(self, out_dir: str) -> str:
        return os.path.join(out_dir, self.name, f"{self.name}_locres.mrc")


def read_list(path: str) -> list[tuple[str, str | None]]:
    """``MAP [MASK]`` per line (shell quoting; ``#`` comments and blank lines ignored);
    relative paths are taken relative to the list file's folder."""
    if not os.path.isfile(path):
        raise InputError(f"list file not found: {path}")
    base = os.path.dirname(path)
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"list file {path} is not a UTF-8 text file") from None
    for no, line in enumerate(lines, 1):
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InputError(f"{path}:{no}: {exc}") from None
        if not fields:
            continue
        if len(fields) > 2:
            raise InputError(f"{path}:{no}: expected MAP [MASK], got {len(fields)} fields "
                             "(quote paths with spaces)")
        paths = [os.path.normpath(os.path.join(base, os.path.expanduser(f))) for f in fields]
        out.append((paths[0], paths[1] if len(paths) > 1 else None))
    if not out:
        raise InputError(f"no maps in list file {path}")
    return out


def map_name(path: str) -> str:
    """``emd_5168.map.gz`` → ``emd_5168`` (the folder name of a map's results)."""
    base = os.path.basename(path)
    if base.lower().endswith(PACKED):
        base = os.path.splitext(base)[0]
    root, ext = os.path.splitext(base)
    return (root if ext else base).lstrip(".") or "map"


def make_jobs(maps) -> list[Job]:
    """Jobs for ``maps`` (paths or (map, mask|None) pairs) in order, names unique (``NAME_2``
    … on a clash, case-insensitively); a map listed twice is refused."""
    jobs, seen, taken = [], {}, set()
    for k, item in enumerate(maps, 1):
        path, mask = (item, None) if isinstance(item, str) else (item[0], item[1])
        real = os.path.realpath(path)
        if real in seen:
            raise InputError(f"map {path} is listed twice (entries {seen[real]} and {k})")
        seen[real] = k
        stem = name = map_name(path)
        n = 1
        while name.casefold() in taken:
            n += 1
            name = f"{stem}_{n}"
        taken.add(name.casefold())
        jobs.append(Job(k, path, mask, name))
    if not jobs:
        raise InputError("no maps given")
    return jobs


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 1 ≤ I ≤ N; InputError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        hint = (" (are SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT set?)"
                if not re.search(r"\d", text or "") else "")
        raise InputError(f"--shard {text!r}: use I/N with whole numbers, e.g. 2/8 (shard I of "
                         f"N, from 1){hint}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise InputError(f"--shard {text}: N must be at least 1")
    if not 1 <= i <= n:
        raise InputError(f"--shard {text}: I must be between 1 and {n} (shards count from 1; "
                         f"a SLURM array for it: --array=1-{n})")
    return i, n


def shard_of(jobs: list, shard=None) -> list:
    """Items I, I+N, I+2N, … (1-based) of ``jobs`` for ``shard=(I, N)``; all when None."""
    return list(jobs) if shard is None else list(jobs[shard[0] - 1::shard[1]])


def list_id(jobs: list[Job]) -> str:
    """A short fingerprint of the whole list (shards of one list share it)."""
    text = "\n".join(f"{os.path.abspath(j.map)}\t{j.mask and os.path.abspath(j.mask)}"
                     for j in jobs)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def check_out_dir(out_dir: str) -> str:
    """Refuse an -o that is a file or looks like a map name; make the folder."""
    if out_dir.lower().rstrip("/").endswith((".mrc", ".map", ".ccp4") + PACKED):
        raise InputError(f"with several maps -o names a folder, not a map file ({out_dir})")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"output {out_dir} is a file; with several maps -o names a folder")
    os.makedirs(out_dir, exist_ok=True)
    return out_dir


def _picture(flag: str, name: str | None) -> str | None:
    if name and (os.path.basename(name) != name or name.startswith(".")
                 or not name.lower().endswith(PICTURES[flag])):
        raise InputError(f"--{flag} {name}: with several maps give a file name ending with "
                         f"{PICTURES[flag]} (no folder); it is written in each map's folder")
    return name


def _stamp(path: str | None):
    if not path:
        return None
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _plain(value):
    """``value`` as JSON gives it back (for comparing options with a stored record)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _row(job: Job, out_dir: str, status: str = "pending") -> dict:
    row = dict.fromkeys(COLUMNS)
    out = job.out_path(out_dir)
    row.update(index=job.index, map=job.map, name=job.name, status=status, error="",
               output=out, mask=job.mask or output_paths(out)["mask"])
    return row


def _done_row(job, out_dir, request):
    """The stored row if the map's result set is complete for ``request``, else None."""
    folder = os.path.join(out_dir, job.name)
    rec = _load_json(os.path.join(folder, RECORD))
    if not isinstance(rec, dict) or rec.get("request") != request or not rec.get("files"):
        return None
    if not all(os.path.isfile(os.path.join(folder, f)) for f in rec["files"]):
        return None
    result = _load_json(output_paths(job.out_path(out_dir))["json"])
    if not isinstance(result, dict) or result.get("input") != os.path.abspath(job.map):
        return None
    row = {k: rec.get("row", {}).get(k) for k in COLUMNS}  # as measured when it was made
    row.update({k: v for k, v in _row(job, out_dir, "skipped").items() if v is not None})
    return row


def run_seconds(timings: dict) -> float:
    """A map's run time from its JSON timings: the estimate's ``total_s`` (which holds its
    resampling, inference … steps) plus the steps outside it."""
    return float(sum(timings.get(k, 0.0) for k in ("read_s", "total_s", "uncertainty_s",
                                                    "write_s")))


def measured(summary: dict, inside) -> dict:
    """The measured columns of a map's row from its result JSON (OUT.json) and its resolution
    values inside the mask (for the fraction at the clamp ends)."""
    import numpy as np

    from .report import at_clamp

    lo, hi = summary["clamp"]
    at_ends = at_clamp(inside, lo) | at_clamp(inside, hi)
    st = summary["stats"]
    return dict(sampling=summary["sampling"], median=st["median"], p5=st["p5"], p25=st["p25"],
                p75=st["p75"], p95=st["p95"], clamp_fraction=float(np.mean(at_ends)),
                model=summary["model"], models=summary.get("models") or {},
                n_voxels=st["n_voxels"], warnings=len(summary.get("warnings", [])))


def run_one(job: Job, out_dir: str, options: dict, force: bool = False, progress: bool = False,
            ready=None, extra: dict | None = None) -> dict:
    """Estimate one map into OUT/NAME/ (or skip it when complete); returns its summary row.
    Bad input and file errors give a ``failed`` row; an interruption propagates."""
    from . import estimate

    t0 = time.perf_counter()
    row = _row(job, out_dir)
    folder = os.path.join(out_dir, job.name)
    try:
        request = _plain({"map": _stamp(job.map) if os.path.isfile(job.map) else job.map,
                          "mask": _stamp(job.mask) if job.mask and os.path.isfile(job.mask)
                          else job.mask, "options": {**options, **(extra or {})}})
        done = None if force else _done_row(job, out_dir, request)
        if done is not None:
            return done
        if os.path.exists(os.path.join(folder, RECORD)):  # no record until the new set is in
            os.remove(os.path.join(folder, RECORD))
        out = job.out_path(out_dir)
        pics = {k: options.get(k) and os.path.join(folder, options[k]) for k in PICTURES}
        result = estimate.run(job.map, out, job.mask, options["model"], pics["histogram"],
                              pics["slices"], pics["chimerax"], progress=progress,
                              calibrate=options["calibrate"], cmap=options["cmap"], ready=ready,
                              **(extra or {}))
        row.update(measured(_load_json(output_paths(out)["json"]) or {},
                            result.resolution[result.mask]))
        row.update(status="ok", seconds=time.perf_counter() - t0)
        files = [os.path.relpath(f, folder) for f in result.files]
        atomic_write_text(os.path.join(folder, RECORD), json.dumps(
            {"request": request, "files": files, "row": row}, indent=1, default=str) + "\n")
    except (_StartError, ImportError, NameError, AttributeError, TypeError):
        raise  # not a fault of this map (a bug, a broken install): stop
    except Exception as exc:  # one bad map must not stop the others
        log.debug("map %s failed", job.map, exc_info=True)
        if isinstance(exc, OSError) and exc.strerror:
            message = exc.strerror + (f": {exc.filename}" if exc.filename else "")
        else:
            message = " ".join(str(exc).split()) or type(exc).__name__
            if not isinstance(exc, (InputError, OSError)):
                message = f"{type(exc).__name__}: {message}"
        row.update(status="failed", error=message, seconds=time.perf_counter() - t0)
    return row


def run_many(maps, out_dir: str, *, model: str = "auto", calibrate: bool = True,
             cmap: str | None = None, histogram: str | None = None, slices: str | None = None,
             chimerax: str | None = None, force: bool = False, shard=None,
             progress: bool = False, ready=None, summary: bool = True, on_row=None,
             **extra) -> list[dict]:
    """Estimate every map of ``maps`` (paths or (map, mask|None) pairs) into ``out_dir`` and
    return one row per map run (list order; with ``shard=(I, N)`` maps I, I+N, …).
    Picture options are file names written in each map's folder; ``ready()`` runs once,
    before the first model loads; ``extra`` goes to :func:`estimate.run`. ``summary``:
    rewrite the summary files after each map; ``on_row(row, k, n)`` after each map."""
    from .estimate import check_model

    check_model(model)
    options = {"model": model, "calibrate": bool(calibrate), "cmap": cmap,
               **{k: _picture(k, v) for k, v in (("histogram", histogram), ("slices", slices),
                                                  ("chimerax", chimerax))}}
    jobs = make_jobs(maps)
    mine = shard_of(jobs, shard)
    check_out_dir(out_dir)
    meta = {"list_id": list_id(jobs), "maps_total": len(jobs), "options": _plain(options)}
    rows = [_row(j, out_dir) for j in mine]
    started = []

    def once():  # e.g. TensorFlow's start with --device/--threads: its errors stop the run
        if not started and ready is not None:
            try:
                ready()
            except Exception as exc:
                raise _StartError() from exc
        started.append(True)

    if summary:
        write_summary(rows, out_dir, shard, meta)
    for k, job in enumerate(mine):
        try:
            rows[k] = run_one(job, out_dir, options, force, progress, once, extra)
        except _StartError as exc:
            raise exc.__cause__ from None
        if on_row is not None:
            on_row(rows[k], k + 1, len(mine))
        if summary:
            write_summary(rows, out_dir, shard, meta)
    return rows


def summary_paths(out_dir: str, shard=None) -> tuple[str, str]:
    """(CSV, JSON) paths of the summary of ``out_dir`` (of one shard when given)."""
    base = "summary" if shard is None else f"summary_shard{shard[0]}-of-{shard[1]}"
    return os.path.join(out_dir, base + ".csv"), os.path.join(out_dir, base + ".json")


def counts(rows) -> dict:
    out = dict.fromkeys(("ok", "skipped", "failed", "pending"), 0)
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def _cell(key, value):
    if value is None:
        return ""
    if key == "models":
        return " ".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.{4 if key == 'clamp_fraction' else 2 if key == 'seconds' else 3}f}"
    return value


def write_summary(rows, out_dir: str, shard=None, meta: dict | None = None) -> list[str]:
    """Write summary(.csv, .json) — or summary_shardI-of-N.* — for ``rows``, all or none;
    returns the two paths. The CSV has :data:`COLUMNS`, the JSON the rows and ``meta``."""
    csv_path, json_path = summary_paths(out_dir, shard)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_cell(k, r.get(k)) for k in COLUMNS])
    doc = {"deepres_summary": 1, "shard": list(shard) if shard else None, **(meta or {}),
           "counts": counts(rows), "rows": rows}
    with OutputSet():
        atomic_write_text(csv_path, buf.getvalue())
        atomic_write_text(json_path, json.dumps(doc, indent=1, default=str) + "\n")
    return [csv_path, json_path]


def merge(out_dir: str) -> tuple[list[dict], list[str]]:
    """Join OUT/summary_shardI-of-N.json (all N of one list) into OUT/summary.csv/json;
    returns (rows, paths written). InputError when shards are missing or do not agree."""
    if not os.path.isdir(out_dir):
        raise InputError(f"output folder not found: {out_dir}")
    found = {}
    for path in glob.glob(os.path.join(glob.escape(out_dir), "summary_shard*-of-*.json")):
        m = _SHARD_FILE.search(os.path.basename(path))
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = path
    if not found:
        raise InputError(f"no shard summaries (summary_shardI-of-N.json) in {out_dir}: run "
                         f"deepres estimate … --shard I/N -o {out_dir} first")
    splits = sorted({n for _, n in found})
    if len(splits) > 1:
        raise InputError(f"{out_dir} holds shard summaries of different splits (of "
                         f"{', '.join(map(str, splits))}): remove the stale ones")
    n = splits[0]
    missing = [f"summary_shard{i}-of-{n}.json" for i in range(1, n + 1) if (i, n) not in found]
    if missing:
        raise InputError(f"missing shard summaries in {out_dir}: {', '.join(missing)} (did "
                         "those array tasks start?)")
    docs = []
    for key in sorted(found):
        doc = _load_json(found[key])
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise InputError(f"{found[key]} is not a deepres summary")
        docs.append(doc)
    for key, what in (("list_id", "map lists"), ("options", "options")):
        if len({json.dumps(d.get(key), sort_keys=True) for d in docs}) > 1:
            raise InputError(f"the shard summaries in {out_dir} come from different {what}: "
                             "rerun the shards with one list and the same options")
    rows = sorted((r for d in docs for r in d["rows"]), key=lambda r: r.get("index") or 0)
    total = docs[0].get("maps_total")
    if total is not None and len(rows) != total:
        raise InputError(f"the shard summaries hold {len(rows)} maps, the list {total}")
    meta = {k: docs[0].get(k) for k in ("list_id", "maps_total", "options")}
    return rows, write_summary(rows, out_dir, None, meta)


def row_line(row: dict, k: int | None = None, n: int | None = None) -> str:
    """One line for a row: ``[k/n] NAME: median … Å (…), model, seconds`` or its status."""
    head = f"[{k}/{n}] " if k is not None else f"{row['index']:>4}  "
    if row["status"] in ("ok", "skipped"):
        what = ("done" if row["status"] == "ok" else "skipped (complete)")
        return (f"{head}{row['name']}: {what}, median {row['median']:.2f} Å "
                f"(5–95 % {row['p5']:.2f}–{row['p95']:.2f} Å), "
                f"{100 * row['clamp_fraction']:.0f} % at a clamp, {row['model']}, "
                f"{row['seconds']:.1f} s")
    if row["status"] == "failed":
        return f"{head}{row['name']}: FAILED: {row['error']}"
    return f"{head}{row['name']}: {row['status']}"
