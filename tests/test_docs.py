"""Docs that run (issue 15, item 6): every command block of README.md and wiki/CLI.md.

Each ```bash block is split into commands (backslash continuations joined, `# comments`
dropped) and each command is a test; a fence without a language whose first line starts with
`$ ` is a transcript: its command is run and its output compared with the page. Commands run as
a user runs them from the repository root after `make demo`, but in a temporary folder:
`demo_output/` is made there by `deepres demo --no-estimate`, and `../shared/data` is a symbolic
link to the data kit (read in place). The fast commands of a page run once, in page order, in
one folder (later commands use earlier outputs); a slow one (it loads the network) runs in a
copy of that folder, only under `make test-all`. Commands that cannot run here are listed in
SKIPPED with the reason; any other fenced block must be listed in NOT_COMMANDS, so nothing is
ignored silently.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kit_paths import DATA, DEEPRES, REPO

DOCS = ("README.md", "wiki/CLI.md")

# command prefix → why it is not run by the tests
SKIPPED = {
    "source .venv/bin/activate": "the tests call the venv's `deepres` directly",
    "make demo": "sets up the venv and writes demo_output/ in the repository; what it runs, "
                 "`deepres demo`, is tested from the README quick start",
    "make test": "runs this test suite (it would recurse)",
    "deepres train": "hours of CPU; tests/test_training.py trains tiny models",
    "deepres calibrate": "needs a model from `deepres train` (runs/mine/); "
                         "tests/test_calibration.py covers the calibration",
    "deepres summary": "merges what the slow `--shard` commands write, each in its own copy "
                       "of the folder; tests/test_batch.py runs shards and merge "
                       "(wiki/cluster/*.sbatch)",
}
# fenced blocks that are not commands: first line → what they are
NOT_COMMANDS = {
    "deepres [--debug] [-v] COMMAND [options]": "synopsis",
    "volume threshold #2 minimum 0.001 set 10000 modelId #3": "ChimeraX commands (an excerpt)",
}
SLOW_COMMANDS = ("estimate", "sharpening", "demo", "train", "calibrate")  # load TensorFlow
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def fenced_blocks(doc: str):
    """(language, first line number, lines) of every fenced block of a markdown file."""
    lines = (REPO / doc).read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^\s*```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i + 1
        while not lines[j].strip().startswith("```"):
            j += 1
        out.append((m.group(1), i + 1, [ln[indent:] for ln in lines[i + 1:j]]))
        i = j + 1
    return out


def bash_commands(lines):
    """Commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    text = "\n".join(lines).replace("\\\n", " ")
    return [shlex.join(argv) for argv in (shlex.split(ln, comments=True)
                                          for ln in text.splitlines()) if argv]


def skip_reason(cmd: str):
    return next((why for pre, why in SKIPPED.items() if cmd == pre or cmd.startswith(pre + " ")),
                None)


def is_slow(cmd: str) -> bool:
    argv = shlex.split(cmd)
    return (argv[0] == "deepres" and len(argv) > 1 and argv[1] in SLOW_COMMANDS
            and "--help" not in argv and "--no-estimate" not in argv)


def doc_commands(doc: str):
    """Every command of a page, in order: dicts with id, cmd, kind (bash/transcript), expected
    output (transcripts), block (its first line number)."""
    out = []
    for lang, line, lines in fenced_blocks(doc):
        if lang == "bash":
            for k, cmd in enumerate(bash_commands(lines)):
                out.append({"id": f"{doc}:{line}:{k}", "cmd": cmd, "kind": "bash", "block": line})
        elif lang == "" and lines and lines[0].startswith("$ "):
            out.append({"id": f"{doc}:{line}", "cmd": lines[0][2:].strip(), "kind": "transcript",
                        "expected": "\n".join(lines[1:]), "block": line})
        else:
            assert lines and lines[0].strip() in NOT_COMMANDS, \
                f"{doc}:{line}: a ```{lang} block that is neither run nor listed in NOT_COMMANDS"
    return out


def run(cmd: str, cwd: Path, timeout: int):
    argv = shlex.split(cmd)
    if argv[0] == "deepres":
        argv[0] = str(DEEPRES)
    env = dict(os.environ, MPLBACKEND="Agg",
               PATH=f"{DEEPRES.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def make_workdir(root: Path) -> Path:
    """root/work (the 'repository root', after `make demo --no-estimate`) + root/shared/data."""
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "data").symlink_to(DATA, target_is_directory=True)
    work = root / "work"
    work.mkdir()
    r = run("deepres demo --no-estimate", work, 120)
    assert r.returncode == 0, r.stderr
    return work


CASES = [c for doc in DOCS for c in doc_commands(doc)]


def _param(case):
    why = skip_reason(case["cmd"])
    marks = [pytest.mark.skip(reason=why)] if why else []
    if not why and is_slow(case["cmd"]):
        marks.append(pytest.mark.slow)
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.fixture(scope="module")
def fast_runs(tmp_path_factory):
    """Per page: its folder, and the result of each fast command, run in page order."""
    if not DEEPRES.is_file():
        pytest.fail(f"{DEEPRES} not found: install the package (make venv)")
    if not DATA.is_dir():
        pytest.fail(f"data kit missing: {DATA}")
    out = {}
    for doc in DOCS:
        work = make_workdir(tmp_path_factory.mktemp(doc.replace("/", "_")))
        results = {c["id"]: run(c["cmd"], work, 180) for c in doc_commands(doc)
                   if not skip_reason(c["cmd"]) and not is_slow(c["cmd"])}
        out[doc] = (work, results)
    return out


def check_transcript(case, r):
    """The page's output block against the run: text equal; numbers equal, or within 0.05 for
    the demo's medians; run times are not compared. A page shows stdout (progress lines go to
    stderr), and for an error the one stderr line."""
    got = (r.stdout if r.returncode == 0 else r.stdout + r.stderr).rstrip("\n").splitlines()
    want = case["expected"].splitlines()
    assert len(got) == len(want), "\n".join(got)
    for g, w in zip(got, want):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), (g, w)
        gn, wn = NUMBER.findall(g), NUMBER.findall(w)
        if w.startswith("timings:"):
            continue
        if w.startswith("DeepRes ("):  # "median 5.16 Å in 7.7 s": the time is not compared
            gn, wn = gn[:-1], wn[:-1]
        tol = 0.05 if case["cmd"] == "deepres demo" else 0.0
        for a, b in zip(gn, wn):
            assert abs(float(a) - float(b)) <= tol, (g, w)


def check(case, r):
    if case["kind"] == "transcript":
        check_transcript(case, r)
        expect_rc = 2 if "deepres: error:" in case["expected"] else 0
        assert r.returncode == expect_rc, r.stderr
    else:
        assert r.returncode == 0, f"{case['cmd']}\n{r.stderr}"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_doc_command(case, fast_runs, tmp_path):
    doc = case["id"].split(":")[0]
    work, results = fast_runs[doc]
    if case["id"] in results:
        check(case, results[case["id"]])
        return
    # slow: in a copy of the page's folder after all its fast commands (outputs included)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(DATA, target_is_directory=True)
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    check(case, run(case["cmd"], copy, 600))


def test_every_block_is_accounted_for():
    """Each page has commands; no two commands of one block write the same -o target; every
    `deepres` subcommand of `deepres --help` has a section in CLI.md and is named in Home.md."""
    for doc in DOCS:
        cases = doc_commands(doc)
        assert cases, doc
        blocks = {}
        for c in cases:
            argv = shlex.split(c["cmd"])
            for flag in ("-o", "--out"):
                if flag in argv:
                    target = argv[argv.index(flag) + 1]
                    assert target not in blocks.setdefault(c["block"], []), \
                        f"{c['id']}: {target} overwrites an earlier command's output"
                    blocks[c["block"]].append(target)
    help_text = run("deepres --help", REPO, 60).stdout
    commands = re.findall(r"^    (\w+)\s", help_text, re.M)
    assert len(commands) >= 8, help_text
    cli = (REPO / "wiki/CLI.md").read_text(encoding="utf-8")
    home = (REPO / "wiki/Home.md").read_text(encoding="utf-8")
    for name in commands:
        assert f"## `deepres {name}`" in cli, f"CLI.md has no section for {name}"
        assert f"`{name}`" in home, f"Home.md does not list {name}"
