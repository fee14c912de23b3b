"""Many maps in one run (issue 14 item 4): `deepres estimate MAP MAP … -o DIR`, --list,
reruns that skip complete maps, --force, failures, --shard and `deepres summary`, and the SLURM
array script of wiki/Cluster.md run as a script under a faked SLURM environment."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from deepres_plugin.backend import batch
from deepres_plugin.backend.volume import InputError
from deepres_plugin.cli import main as cli_main

from kit_paths import DEEPRES, REPO

CLUSTER = REPO / "wiki" / "cluster"


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Two small simulated bundles (42 x 42 x 50 voxels, 1 Å/px), b with its mask, a bad file,
    and a list file: bad map, comment, blank line, `b.mrc b_mask.mrc`."""
    from deepres_plugin.backend.simulate import simulate
    from deepres_plugin.backend.volume import Volume, write_volume
    from deepres_plugin.cli.demo import CHAIN_RESOLUTIONS, helix_bundle

    folder = tmp_path_factory.mktemp("batch_in")
    for name, seed, res in (("a", 1, CHAIN_RESOLUTIONS),
                            ("b", 2, {"A": 4.0, "B": 4.0, "C": 6.0, "D": 6.0})):
        sim = simulate(helix_bundle(14), 1.0, res, noise=0.05, seed=seed)
        grid = Volume(sim.map, 1.0, sim.origin)
        write_volume(str(folder / f"{name}.mrc"), grid)
        write_volume(str(folder / f"{name}_mask.mrc"), grid, sim.mask.astype(np.float32))
    (folder / "bad.mrc").write_text("not a map\n")
    (folder / "maps.txt").write_text("bad.mrc\n# the other map, with its mask\n\n"
                                     "b.mrc   b_mask.mrc\n")
    (folder / "two.txt").write_text("a.mrc\nb.mrc b_mask.mrc\n")
    return folder


def deepres(*args, cwd, env=None, timeout=300):
    env = dict(os.environ, MPLBACKEND="Agg", **(env or {}))
    return subprocess.run([str(DEEPRES), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def main(argv) -> int:
    """`deepres ARGV` in this process (for refusals: nothing heavy loads); signal handlers
    put back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return cli_main(argv)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def summary(folder: Path, name="summary"):
    doc = json.loads((folder / f"{name}.json").read_text())
    with open(folder / f"{name}.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["name"] for r in table] == [r["name"] for r in doc["rows"]]
    return doc, {r["name"]: r for r in doc["rows"]}


def mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ------------------------------------ no network -------------------------------------------
def test_list_file(tmp_path):
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "maps.txt").write_text("# my maps\n\none.mrc\n  ../data/two.map.gz  m2.mrc # cut\n"
                                  "'with space.mrc'\n/abs/three.mrc\n")
    got = batch.read_list(str(sub / "maps.txt"))
    assert got == [(str(sub / "one.mrc"), None),
                   (str(tmp_path / "data" / "two.map.gz"), str(sub / "m2.mrc")),
                   (str(sub / "with space.mrc"), None), ("/abs/three.mrc", None)]
    (sub / "bad.txt").write_text("a.mrc\na.mrc b.mrc c.mrc\n")
    (sub / "empty.txt").write_text("# nothing\n\n")
    for name, message in (("bad.txt", "bad.txt:2: expected MAP [MASK], got 3 fields"),
                          ("empty.txt", "no maps in list file"),
                          ("none.txt", "list file not found")):
        with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            batch.read_list(str(sub / name))


def test_names_are_unique_and_shards_interleave():
    jobs = batch.make_jobs(["x/map.mrc", ("y/map.mrc", "y/mask.mrc"), "z/MAP.map.gz",
                            "emd_5168.map.gz", "/d/.hidden.mrc"])
    assert [j.name for j in jobs] == ["map", "map_2", "MAP_3", "emd_5168", "hidden"]
    assert jobs[1].mask == "y/mask.mrc" and jobs[2].index == 3
    assert jobs[1].out_path("o") == os.path.join("o", "map_2", "map_2_locres.mrc")
    with pytest.raises(InputError, match="listed twice"):
        batch.make_jobs(["a.mrc", "./a.mrc"])
    items = list(range(1, 8))
    assert batch.shard_of(items, (1, 3)) == [1, 4, 7] and batch.shard_of(items, (3, 3)) == [3, 6]
    assert sorted(sum((batch.shard_of(items, (i, 3)) for i in (1, 2, 3)), [])) == items
    assert batch.parse_shard(" 2 / 8 ") == (2, 8)


@pytest.mark.parametrize("text,message", [
    ("0/2", "--shard 0/2: I must be between 1 and 2 (shards count from 1; a SLURM array for "
            "it: --array=1-2)"),
    ("3/2", "--shard 3/2: I must be between 1 and 2"),
    ("1/0", "--shard 1/0: N must be at least 1"),
    ("/", "--shard '/': use I/N with whole numbers, e.g. 2/8 (shard I of N, from 1) (are "
          "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT set?)"),
])
def test_bad_shard_one_line_exit_2(maps, tmp_path, capsys, text, message):
    args = ["estimate", "--list", str(maps / "two.txt"), "-o", str(tmp_path / "out"),
            "--shard", text]
    assert main(args) == 2  # in this process: refused before anything heavy loads
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deepres: error: {message}"), err
    assert not (tmp_path / "out").exists()
    if text == "0/2":  # and so from the shell
        r = deepres(*args, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr == err and r.stdout == ""


def test_batch_refusals(maps, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(maps)
    cases = [(["a.mrc", "b.mrc", "-o", tmp_path / "x.mrc"], "-o names a folder, not a map"),
             (["--list", "none.txt", "-o", tmp_path / "o"], "list file not found: none.txt"),
             (["a.mrc", "b.mrc", "-o", tmp_path / "o", "--histogram", "pics/h.png"],
              "--histogram pics/h.png: with several maps give a file name ending with .png"),
             (["a.mrc", "b.mrc", "-o", tmp_path / "o", "--atoms", "m.cif"],
              "--atoms takes one map"),
             (["-o", tmp_path / "o"], "give a map (or several, or --list FILE)")]
    for args, message in cases:
        assert main(["estimate", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("deepres: error: ") and message in err, err
    assert not (tmp_path / "o").exists()


def test_merge_refuses_missing_and_mixed_shards(tmp_path):
    jobs = batch.make_jobs(["a.mrc", "b.mrc", "c.mrc"])
    meta = {"list_id": batch.list_id(jobs), "maps_total": 3}
    for i in (1, 3):
        rows = [batch._row(j, str(tmp_path)) for j in batch.shard_of(jobs, (i, 3))]
        batch.write_summary(rows, str(tmp_path), (i, 3), meta)
    with pytest.raises(InputError, match=r"missing shard summaries .*summary_shard2-of-3\.json"):
        batch.merge(str(tmp_path))
    batch.write_summary([], str(tmp_path), (1, 2), meta)
    with pytest.raises(InputError, match="different splits"):
        batch.merge(str(tmp_path))
    (tmp_path / "summary_shard1-of-2.json").unlink()
    batch.write_summary([batch._row(jobs[1], str(tmp_path))], str(tmp_path), (2, 3), meta)
    r = deepres("summary", tmp_path, cwd=tmp_path)  # all three shards, no map run yet
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"deepres: error: of 3 maps, 3 did not run (listed in "
                        f"{tmp_path}/summary.csv)\n")
    assert [ln.split()[1] for ln in r.stdout.splitlines()[:3]] == ["a:", "b:", "c:"]
    assert summary(tmp_path)[0]["counts"]["pending"] == 3
    (tmp_path / "empty").mkdir()
    for folder, message in (("empty", "no shard summaries"), ("none", "output folder not found")):
        r = deepres("summary", tmp_path / folder, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("deepres: error: " + message)


# ------------------------------- with the network (one load per run) -----------------------
@pytest.fixture(scope="module")
def first_run(maps, tmp_path_factory):
    """`deepres estimate a.mrc --list maps.txt -o OUT` (a bad map among two good ones)."""
    out = tmp_path_factory.mktemp("batch_out") / "out"
    args = ("estimate", "a.mrc", "--list", "maps.txt", "-o", out, "--model", "standard",
            "--histogram", "hist.png", "--threads", "1")
    r = deepres(*args, cwd=maps)
    return {"out": out, "args": args, "r": r}


def test_several_maps_one_summary(first_run, maps):
    out, r = first_run["out"], first_run["r"]
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == ("deepres: error: of 3 maps, 1 failed (listed in "
                                         f"{out}/summary.csv)")
    assert "[2/3] bad: FAILED: map bad.mrc is not an MRC/CCP4 file" in r.stdout
    assert "3 map(s): 2 done, 0 skipped (complete), 1 failed" in r.stdout
    doc, rows = summary(out)
    assert [r_["status"] for r_ in doc["rows"]] == ["ok", "failed", "ok"]
    assert doc["counts"] == {"ok": 2, "skipped": 0, "failed": 1, "pending": 0}
    assert "is not an MRC/CCP4 file" in rows["bad"]["error"] and rows["bad"]["median"] is None
    assert sorted(os.listdir(out)) == ["a", "b", "summary.csv", "summary.json"]
    assert sorted(os.listdir(out / "a")) == ["a_locres.json", "a_locres.mrc",
                                             "a_locres_mask.mrc", "done.json", "hist.png"]
    assert sorted(os.listdir(out / "b")) == ["b_locres.json", "b_locres.mrc", "done.json",
                                             "hist.png"]  # b has its mask from the list
    for name in ("a", "b"):
        row, res = rows[name], json.loads((out / name / f"{name}_locres.json").read_text())
        assert res["input"] == str(maps / f"{name}.mrc")
        for key in ("median", "p5", "p25", "p75", "p95"):
            assert row[key] == res["stats"][key]
        assert row["sampling"] == 1.0 and row["model"] == "standard"
        assert row["models"] == {"standard": res["stats"]["n_voxels"]}
        assert 2.5 <= row["p5"] < row["median"] < row["p95"] <= 13.0
        assert 0.0 <= row["clamp_fraction"] < 0.3 and row["seconds"] > 0
    assert rows["b"]["mask"] == "b_mask.mrc"  # paths as listed (the list is in the cwd)
    assert json.loads((out / "b" / "b_locres.json").read_text())["mask"] == \
        str(maps / "b_mask.mrc")
    assert rows["a"]["mask"] == str(out / "a" / "a_locres_mask.mrc")  # the automatic one
    assert rows["a"]["median"] > rows["b"]["median"]  # a has an 8 Å chain, b stops at 6 Å


def test_rerun_skips_complete_maps(first_run, maps):
    out = first_run["out"]
    before = {n: mtimes(out / n) for n in ("a", "b")}
    first = summary(out)[1]
    t0 = time.perf_counter()
    r = deepres(*first_run["args"], cwd=maps)
    wall = time.perf_counter() - t0
    assert r.returncode == 2 and "[1/3] a: skipped (complete), median" in r.stdout
    assert wall < 15  # no network: ~1.5 s on an idle 2-core machine
    assert "loading the standard model" not in r.stderr
    doc, rows = summary(out)
    assert [r_["status"] for r_ in doc["rows"]] == ["skipped", "failed", "skipped"]
    for name in ("a", "b"):
        assert mtimes(out / name) == before[name]  # untouched
        assert {k: v for k, v in rows[name].items() if k != "status"} == \
            {k: v for k, v in first[name].items() if k != "status"}


def test_stale_results_are_not_skipped(first_run, maps, tmp_path):
    """What a rerun would redo: another option, a changed input, a missing file."""
    out = str(first_run["out"])
    job = batch.make_jobs([str(maps / "a.mrc")])[0]
    options = {"model": "standard", "calibrate": True, "cmap": None, "histogram": "hist.png",
               "slices": None, "chimerax": None}

    def request(**change):
        return batch._plain({"map": batch._stamp(job.map), "mask": None,
                             "options": {**options, **change}})

    assert batch._done_row(job, out, request())["status"] == "skipped"
    assert batch._done_row(job, out, request(model="coarse")) is None
    assert batch._done_row(job, out, request(calibrate=False)) is None
    stamp = batch._stamp(job.map)
    os.utime(job.map, ns=(stamp["mtime_ns"] + 10**9,) * 2)  # the map changed since
    try:
        assert batch._done_row(job, out, request()) is None
    finally:
        os.utime(job.map, ns=(stamp["mtime_ns"],) * 2)
    other = batch.make_jobs([str(tmp_path / "a.mrc")])[0]  # same name, another input
    assert batch._done_row(other, out, request()) is None


def test_single_map_run_matches_the_summary(first_run, maps, tmp_path):
    r = deepres("estimate", "a.mrc", "-o", tmp_path / "single.mrc", "--model", "standard",
                "--threads", "1", cwd=maps)
    assert r.returncode == 0, r.stderr
    single = json.loads((tmp_path / "single.json").read_text())
    row = summary(first_run["out"])[1]["a"]
    for key in ("median", "p5", "p25", "p75", "p95"):
        assert row[key] == single["stats"][key]
    assert sorted(os.listdir(tmp_path)) == ["single.json", "single.mrc", "single_mask.mrc"]


def test_force_redoes(first_run, maps):
    out = first_run["out"]
    before = {n: mtimes(out / n) for n in ("a", "b")}
    (maps / "only_a.txt").write_text("a.mrc\n")
    r = deepres("estimate", "--list", "only_a.txt", "-o", out, "--model", "standard",
                "--histogram", "hist.png", "--force", "--threads", "1", cwd=maps)
    assert r.returncode == 0, r.stderr
    assert "[1/1] a: done, median" in r.stdout and "1 map(s): 1 done, 0 skipped" in r.stdout
    doc, rows = summary(out)
    assert list(rows) == ["a"] and rows["a"]["status"] == "ok"
    after = mtimes(out / "a")
    assert all(after[n] > before["a"][n] for n in before["a"])
    assert mtimes(out / "b") == before["b"]


def test_cluster_script_shards_and_merge(maps, tmp_path):
    """wiki/cluster/deepres_array.sbatch as SLURM runs it (its #SBATCH lines are comments):
    task 1 and 2 of a 2-task array on two maps, then deepres_merge.sbatch."""
    out = tmp_path / "results"
    env = {"PATH": f"{DEEPRES.parent}{os.pathsep}{os.environ['PATH']}",
           "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_CPUS_PER_TASK": "1", "SLURM_JOB_ID": "42"}
    for task in ("1", "2"):
        r = subprocess.run(["bash", str(CLUSTER / "deepres_array.sbatch"), "two.txt", str(out),
                            "--model", "standard"], cwd=maps, capture_output=True, text=True,
                           env={**os.environ, **env, "SLURM_ARRAY_TASK_ID": task}, timeout=300)
        assert r.returncode == 0, r.stderr
        assert f"summary_shard{task}-of-2.csv" in r.stdout
    assert sorted(os.listdir(out)) == ["a", "b", "summary_shard1-of-2.csv",
                                       "summary_shard1-of-2.json", "summary_shard2-of-2.csv",
                                       "summary_shard2-of-2.json"]
    assert [r_["name"] for r_ in summary(out, "summary_shard2-of-2")[0]["rows"]] == ["b"]
    r = subprocess.run(["bash", str(CLUSTER / "deepres_merge.sbatch"), str(out)], cwd=maps,
                       capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 map(s): 2 done, 0 skipped (complete), 0 failed" in r.stdout
    doc, rows = summary(out)
    assert list(rows) == ["a", "b"] and doc["counts"]["ok"] == 2
    for name in ("a", "b"):
        res = json.loads((out / name / f"{name}_locres.json").read_text())
        assert rows[name]["median"] == res["stats"]["median"]
        assert 2.5 < rows[name]["median"] < 13.0
    # the wiki page shows the scripts exactly as tested
    page = (REPO / "wiki" / "Cluster.md").read_text(encoding="utf-8")
    for script in ("deepres_array.sbatch", "deepres_merge.sbatch"):
        assert (CLUSTER / script).read_text(encoding="utf-8") in page
