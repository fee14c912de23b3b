"""Scipion as users run it: scipion-app's launcher, headless, in the private Scipion folders of
the root conftest.py (SCIPION_HOME, SCIPION_USER_DATA … in a tmp dir).

`scipion3`, the launcher that scipion-installer writes, runs ``python -m scipion ARGS`` in the
Scipion environment with SCIPION_TESTS_CMD="scipion3 tests"; these tests do exactly that with
this venv's Python. (The pip console script ``scipion`` of scipion-app 3.8 crashes in an
environment where nothing has imported ``importlib.util`` yet; ``python -m scipion`` does not.)

- ``scipion3 inspect deepres_plugin``: the plugin's ``tests`` submodule is found (not "missing");
- ``scipion3 tests --grep deepres --show``: Scipion's runner lists deepres_plugin/tests;
- ``scipion3 tests deepres_plugin.tests.test_protocols_deepres``: runs them, all pass;
- ``scipion3 template deepres_plugin-deepres_map_to_resolution …``: the workflow template
  command creates the project (and, slow, schedules and runs it);
- ``scipion3 installp -p <clone>/scipion-em-deepres --devel`` in a clean environment: a
  throw-away venv that sees this venv's packages but not the plugin (offline, ~15 s); this
  venv is untouched.
"""
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUR_MODULE = "deepres_plugin.tests.test_protocols_deepres"
OUR_CLASSES = ("TestDeepResSimulateEstimate", "TestDeepResEstimateImported")
MAP_TEMPLATE = "deepres_plugin-deepres_map_to_resolution"  # <plugin>-<file name>
ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("scipion") is None,
                                reason="scipion-app is not installed (test extra)")


def launcher_env(python=sys.executable, **extra):
    """The root conftest's SCIPION_* variables + what the scipion3 launcher sets."""
    env = dict(os.environ)
    # the template command runs `python -m scipion …` sub-commands: this Python first on PATH
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    env["SCIPION_LOCAL_CONFIG"] = env["SCIPION_CONFIG"]  # never read ~/.config/scipion
    env["SCIPION_TESTS_CMD"] = "scipion3 tests"
    env.update(extra)
    return env


def scipion3(*args, python=sys.executable, timeout=300, env=None):
    """Run ``python -m scipion ARGS`` from SCIPION_HOME; output with colours stripped."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-m", "scipion", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=os.environ["SCIPION_HOME"],
                          env=env or launcher_env(python))
    proc.out = ANSI.sub("", proc.stdout + proc.stderr)
    proc.wall = time.perf_counter() - t0
    return proc


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A 4 Å 4-helix-bundle map + mask made in code ('auto' keeps to the standard model)."""
    from deepres_plugin.tests import helpers as H

    mpath, kpath, _ = H.bundle_map(str(tmp_path_factory.mktemp("bundle")), 4.0, noise=0.05)
    return mpath, kpath


def test_inspect_finds_plugin_tests():
    out = scipion3("inspect", "deepres_plugin", timeout=120)
    assert out.returncode == 0, out.out
    for sub in ("constants", "protocols", "wizards", "viewers", "tests"):
        assert re.search(rf">>> {sub}:\s+loaded", out.out), out.out


def test_tests_show_lists_ours():
    out = scipion3("tests", "--grep", "deepres", "--show", timeout=120)
    assert out.returncode == 0, out.out
    assert f"scipion3 tests {OUR_MODULE}\n" in out.out, out.out
    for cls in OUR_CLASSES:
        assert f"scipion3 tests {OUR_MODULE}.{cls}" in out.out, out.out


def test_tests_run_ours():
    out = scipion3("tests", OUR_MODULE, timeout=600)
    assert out.returncode == 0, out.out[-4000:]
    passed = re.search(r"\[  PASSED  \] (\d+) tests", out.out)
    assert passed and int(passed.group(1)) >= 4, out.out[-4000:]
    for cls in OUR_CLASSES:
        assert f"projects/{cls}/project.sqlite" in out.out  # real projects, one per class


def _template(name, bundle, *flags):
    mpath, kpath = bundle
    out = scipion3("template", MAP_TEMPLATE, "--nogui", *flags, f"map={mpath}",
                   f"mask={kpath}", "sampling=1.0", f"project_name={name}", timeout=180)
    saved = re.search(r"New workflow saved at (\S+)", out.out)
    if saved and os.path.isfile(saved.group(1)):
        os.remove(saved.group(1))  # the launcher leaves its filled-in workflow in /tmp
    # the launcher exits 0 even when it could not create the project: check the project
    assert out.returncode == 0 and saved, out.out
    return out


def _runs(name):
    from pyworkflow.project import Manager

    project = Manager().loadProject(name)
    return {r.getClassName(): r for r in project.getRuns(refresh=True)}


def test_template_command_creates_project(bundle):
    _template("TplLauncherMap", bundle, "--noschedule")
    runs = _runs("TplLauncherMap")
    assert set(runs) == {"ProtImportVolumes", "ProtImportMask", "ProtDeepResEstimate"}
    imp, est = runs["ProtImportVolumes"], runs["ProtDeepResEstimate"]
    assert imp.filesPath.get() == bundle[0] and imp.samplingRate.get() == 1.0
    assert runs["ProtImportMask"].maskPath.get() == bundle[1]
    assert est.inputVolume.getObjValue().getObjId() == imp.getObjId()
    assert est.inputVolume.getExtended() == "outputVolume"
    assert est.mask.getExtended() == "outputMask"
    assert all(not r.isActive() and not r.isFinished() for r in runs.values())  # not scheduled


def _auto_model_ready() -> bool:
    from deepres_plugin.protocols.protocol_estimate import read_card

    return read_card("auto") is not None


def _stop_schedulers(project_path):
    """End this test's own `pw_schedule_run` processes (they poll until their run ends)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "pw_schedule_run" in cmd and project_path in cmd:
            proc.terminate()


@pytest.mark.slow
def test_template_command_schedules_and_runs(bundle):
    """Without --noschedule the launcher schedules the workflow: pyworkflow's scheduler waits
    30 s before its first input check, then the imports and DeepRes (model auto) run."""
    if not _auto_model_ready():
        pytest.skip("model 'auto' needs all shipped models (coarse) in the weights folder")
    import numpy as np

    from deepres_plugin.tests import helpers as H

    name = "TplLauncherMapRun"
    _template(name, bundle)
    path = os.path.join(os.environ["SCIPION_USER_DATA"], "projects", name)
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            runs = _runs(name)
            est = runs["ProtDeepResEstimate"]
            if est.isFinished() or est.isFailed() or any(r.isFailed() for r in runs.values()):
                break
            time.sleep(5)
        assert est.isFinished(), [(r.getRunName(), r.getStatus(), r.getErrorMessage())
                                  for r in runs.values()]
    finally:
        _stop_schedulers(path)
    res, sampling, _ = H.read_mrc(est.outputResolution.getFileName())
    mask, _, _ = H.read_mrc(bundle[1])
    np.testing.assert_array_equal(res > 0, mask > 0.5)
    assert sampling == pytest.approx(1.0)
    assert 2.5 < est.getStats()["median"] < 6.0


def _clean_env(root: Path) -> Path:
    """A throw-away venv that sees this venv's packages (symlinked into a folder outside it,
    so pip there can never remove them) except the plugin; returns its python."""
    here = Path(sysconfig.get_paths()["purelib"])
    base = root / "base-packages"
    base.mkdir()
    for entry in here.iterdir():
        if entry.name.startswith(("scipion_em_deepres", "__editable__", "deepres_plugin")) \
                or entry.suffix == ".pth":
            continue
        (base / entry.name).symlink_to(entry)
    venv = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip()
    Path(purelib, "_base_packages.pth").write_text(f"{base}\n")
    return python


def _run_py(python, code):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          cwd=os.environ["SCIPION_HOME"], timeout=120)


def test_installp_devel_in_clean_environment(tmp_path):
    """`scipion3 installp -p <clone> --devel` = pip install -e <clone>, then Scipion checks
    for <site-packages>/<folder name>* (folder name = distribution, scipion-em-deepres)."""
    record = next(Path(sysconfig.get_paths()["purelib"]).glob(
        "scipion_em_deepres-*.dist-info")) / "RECORD"
    record_before = record.read_bytes()
    python = _clean_env(tmp_path)
    env = launcher_env(python, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")  # offline
    probe = "import importlib.util as u; print(u.find_spec('deepres_plugin'))"
    assert _run_py(python, probe).stdout.strip() == "None"  # clean: no plugin
    clone = tmp_path / "src" / "scipion-em-deepres"  # what `git clone …/scipion-em-deepres`
    clone.parent.mkdir()
    clone.symlink_to(REPO)
    out = scipion3("installp", "-p", clone, "--devel", python=python, env=env, timeout=600)
    assert out.returncode == 0, out.out[-4000:]
    assert "Successfully installed scipion-em-deepres" in out.out, out.out[-4000:]
    where = _run_py(python, "import deepres_plugin, importlib.metadata as m; "
                            "print(deepres_plugin.__file__); "
                            "print(m.distribution('scipion-em-deepres')._path)").stdout.split()
    assert Path(where[0]).resolve() == REPO / "deepres_plugin" / "__init__.py"
    assert where[1].startswith(str(tmp_path / "env"))
    out = scipion3("inspect", "deepres_plugin", python=python, env=env, timeout=120)
    assert re.search(r">>> tests:\s+loaded", out.out), out.out
    out = scipion3("tests", "--grep", "deepres", "--show", python=python, env=env,
                   timeout=120)
    assert f"scipion3 tests {OUR_MODULE}.{OUR_CLASSES[0]}" in out.out, out.out
    assert record.read_bytes() == record_before  # this venv's install untouched
