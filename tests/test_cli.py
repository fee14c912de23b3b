"""The `deepres` console script, run as users run it (subprocess of the venv's executable)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest

from deepres_plugin.backend.volume import read_volume

from kit_paths import DEEPRES

HEAVY = ("tensorflow", "keras", "pyworkflow", "pwem", "matplotlib", "gemmi", "scipy")


def test_help_is_fast_and_light(deepres):
    t0 = time.perf_counter()
    r = deepres("--help")
    wall = time.perf_counter() - t0
    assert r.returncode == 0 and "COMMAND" in r.stdout
    for cmd in ("info", "simulate", "demo"):
        assert f"    {cmd} " in r.stdout
    assert wall < 3.0  # ~0.1 s when idle; generous for a loaded 2-core CI box
    code = ("import sys\nfrom deepres_plugin.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("cmd", ["info", "simulate", "demo", "calibrate", "train"])
def test_command_help(deepres, cmd):
    r = deepres(cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: deepres " + cmd)


def test_no_command_prints_usage(deepres):
    r = deepres()
    assert r.returncode == 2 and "usage: deepres" in r.stderr


def test_info_on_real_map(deepres, real_map):
    r = deepres("info", real_map)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "grid (x,y,z) 100 x 100 x 100 voxels" in out
    assert "voxel size   1.742 Å/px (Nyquist 3.484 Å)" in out
    assert "nstart       -50, -50, -50 voxels" in out
    assert "voxel 0 at   -87.1, -87.1, -87.1 Å" in out
    facts = json.loads(deepres("info", real_map, "--json").stdout)
    assert facts["shape_xyz"] == [100, 100, 100] and facts["origin_A"] == [0.0, 0.0, 0.0]
    assert facts["min"] == pytest.approx(-32.0, abs=0.01)
    assert 6.0 < facts["power_spectrum_resolution_A"] < 7.5  # deposited at 6.6 Å


def test_simulate_writes_three_maps(deepres, data_path, tmp_path):
    model = data_path("structures/5pti.cif.gz")
    out = tmp_path / "sim" / "pti.mrc"
    r = deepres("simulate", model, "-o", out, "--sampling", "1.5", "--resolution", "5",
                "--noise", "0.08")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["pti.mrc", "pti_mask.mrc", "pti_truth.mrc"]
    for name in names:
        assert str(out.parent / name) in r.stdout
    vol, truth, mask = (read_volume(str(out.parent / n)) for n in
                        ("pti.mrc", "pti_truth.mrc", "pti_mask.mrc"))
    for v in (truth, mask):
        assert v.shape == vol.shape and v.sampling == vol.sampling == 1.5
        assert v.origin == vol.origin
    with mrcfile.open(str(out)) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(1.5)
        assert mrc.data.dtype == np.float32
    assert set(np.unique(truth.data)) == {0.0, 5.0}
    assert set(np.unique(mask.data)) == {0.0, 1.0}
    assert np.array_equal(truth.data > 0, mask.data > 0.5)
    assert vol.origin != (0.0, 0.0, 0.0)  # placed on the model's coordinates


def test_simulate_per_chain(deepres, data_path, tmp_path):
    out = tmp_path / "two.mrc"
    r = deepres("simulate", data_path("structures/1mol.cif.gz"), "-o", out,
                "--chain-resolution", "A=3", "--resolution", "7")
    assert r.returncode == 0, r.stderr
    assert "A=3 Å, B=7 Å" in r.stdout
    truth = read_volume(str(tmp_path / "two_truth.mrc")).data
    assert set(np.unique(truth)) == {0.0, 3.0, 7.0}


def _bad_maps(tmp_path):
    def write(name, data, voxel=1.0):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.new(str(tmp_path / name)) as mrc:
                mrc.set_data(np.asarray(data, np.float32))
                mrc.voxel_size = voxel
        return str(tmp_path / name)

    cube = np.ones((8, 8, 8))
    nan = cube.copy()
    nan[1, 2, 3] = np.nan
    (tmp_path / "text.mrc").write_text("not a map\n" * 200)
    return {
        "missing": (str(tmp_path / "missing.mrc"), "map file not found"),
        "not_mrc": (str(tmp_path / "text.mrc"), "is not an MRC/CCP4 file"),
        "2d": (write("image.mrc", np.ones((8, 8))), "is not a 3-D volume"),
        "nan": (write("nan.mrc", nan), "contains NaN or Inf"),
        "voxel0": (write("v0.mrc", cube, 0.0), "has no voxel size"),
        "aniso": (write("aniso.mrc", cube, (1.0, 1.0, 2.0)), "anisotropic voxels"),
    }


@pytest.mark.parametrize("case", ["missing", "not_mrc", "2d", "nan", "voxel0", "aniso"])
def test_info_bad_input_one_line_exit_2(deepres, tmp_path, case):
    path, message = _bad_maps(tmp_path)[case]
    r = deepres("info", path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("deepres: error: ")
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_debug_shows_traceback(deepres, tmp_path):
    r = deepres("info", str(tmp_path / "missing.mrc"), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("deepres: error: map file not found")


@pytest.mark.parametrize("args,message", [
    (["--resolution", "4", "--no-such-option"], None),  # argparse: usage + error, exit 2
    (["--resolution", "1.5"], "beyond Nyquist"),
    (["--chain-resolution", "A=3,X=5"], "chain(s) X not in the model"),
    (["--chain-resolution", "A3"], "bad chain resolution 'A3': use CHAIN=Å"),
    (["--chain-resolution", "A=3"], "no resolution given for chain(s) B"),
    (["--chain-resolution", "A:3"], "no resolution given for chain(s) B"),  # both syntaxes
    ([], "give --resolution or --chain-resolution"),
    (["--resolution", "4", "--sampling", "0"], "--sampling must be > 0"),
])
def test_simulate_bad_options(deepres, data_path, tmp_path, args, message):
    out = tmp_path / "out" / "x.mrc"
    r = deepres("simulate", data_path("structures/1mol.cif.gz"), "-o", out, *args)
    assert r.returncode == 2
    if message:
        assert r.stderr.count("\n") == 1 and message in r.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_simulate_bad_model_and_outputs(deepres, data_path, tmp_path):
    bad = tmp_path / "model.cif"
    bad.write_text("data_x\n_cell.length_a oops\n")
    cases = [
        (["simulate", str(tmp_path / "none.cif"), "-o", tmp_path / "a.mrc", "--resolution", "4"],
         "cannot read atomic model"),
        (["simulate", bad, "-o", tmp_path / "b.mrc", "--resolution", "4"], "atomic model"),
        (["simulate", data_path("structures/5pti.cif.gz"), "-o", tmp_path / "c.map",
          "--resolution", "4"], "must end with .mrc"),
        (["simulate", data_path("structures/5pti.cif.gz"), "-o", "/proc/c.mrc",
          "--resolution", "4"], "not a writable folder"),
    ]
    for args, message in cases:
        r = deepres(*args)
        assert r.returncode == 2, args
        assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cif"]


def test_demo_runs_into_a_folder(deepres, tmp_path, surface_of):
    out = tmp_path / "demo"
    r = deepres("demo", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "demo_locres.cxc", "demo_locres.json", "demo_locres.mrc", "demo_locres_histogram.png",
        "demo_locres_slices.png", "demo_map.mrc", "demo_mask.mrc", "demo_model.cif",
        "demo_truth.mrc"]
    assert "timings:" in r.stdout
    # per-chain medians next to the truth; the 3 Å chain reads better than the 8 Å chain
    rows = {line.split()[0]: float(line.split()[2]) for line in r.stdout.splitlines()
            if line.startswith("  ") and line.split()[0] in "ABCD" and len(line.split()) >= 4}
    assert set(rows) == {"A", "B", "C", "D"}
    assert rows["A"] < rows["B"] < rows["C"] < rows["D"]
    assert abs(rows["B"] - 4.5) < 0.75
    vol = read_volume(str(out / "demo_map.mrc"))
    truth = read_volume(str(out / "demo_truth.mrc")).data
    assert vol.sampling == 1.0
    assert set(np.unique(truth)) == {0.0, 3.0, 4.5, 6.0, 8.0}
    counts = [int((truth == r_).sum()) for r_ in (3.0, 4.5, 6.0, 8.0)]
    assert max(counts) < 1.05 * min(counts)  # four identical helices
    # the model file overlays the map: atoms sit on the density
    from deepres_plugin.backend.simulate import atom_table, load_structure

    pos = atom_table(load_structure(str(out / "demo_model.cif")))[0]
    assert len(pos) == 4 * 28 * 5
    ijk = np.rint((pos - np.asarray(vol.origin)) / vol.sampling).astype(int)
    assert (truth[ijk[:, 2], ijk[:, 1], ijk[:, 0]] > 0).all()
    # ChimeraX: only the surface inside the mask gets a resolution colour
    surface = surface_of(str(out / "demo_locres.cxc"))
    assert surface["coloured"] > 0.9 * surface["vertices"] > 1000
    assert surface["coloured_outside"] < 0.01 * surface["coloured"]


# --------------------------- estimate: refusals, signals, terminal ---------------------------
@pytest.fixture(scope="module")
def demo_maps(tmp_path_factory):
    """The demo bundle (4 helices at 3–8 Å) written as map + mask, made in code."""
    from deepres_plugin.backend.simulate import simulate
    from deepres_plugin.backend.volume import Volume, write_volume
    from deepres_plugin.cli.demo import CHAIN_RESOLUTIONS, helix_bundle

    folder = tmp_path_factory.mktemp("demo_in")
    sim = simulate(helix_bundle(28), 1.0, CHAIN_RESOLUTIONS, noise=0.05, seed=0)
    grid = Volume(sim.map, 1.0, sim.origin)
    return {"map": write_volume(str(folder / "map.mrc"), grid),
            "mask": write_volume(str(folder / "mask.mrc"), grid, sim.mask.astype(np.float32)),
            "sim": sim, "grid": grid, "folder": folder}


def _estimate_refusals(tmp_path, demo_maps):
    from deepres_plugin.backend.volume import Volume, write_volume

    sim, grid = demo_maps["sim"], demo_maps["grid"]

    def put(name, data, sampling=1.0):
        return write_volume(str(tmp_path / name), Volume(np.asarray(data, np.float32), sampling))

    shape = sim.map.shape
    ripple = 1.0 + 1e-7 * np.random.default_rng(0).standard_normal(shape)
    solvent = np.zeros(shape, np.float32)
    solvent[:6, :6, :6] = 1  # a corner of the box: noise only
    raw = open(demo_maps["map"], "rb").read()
    (tmp_path / "cut.mrc").write_bytes(raw[:200_000])
    coarse = put("coarse.mrc", sim.map, 13.0)  # Nyquist 26 Å
    return {
        "empty": ([put("zero.mrc", np.zeros(shape))], "is empty (every voxel is 0)"),
        "constant": ([put("const.mrc", np.full(shape, 2.0))], "is constant (every voxel ≈ 2)"),
        "near-constant": ([put("ripple.mrc", ripple), "--mask", demo_maps["mask"]],
                          "is constant (every voxel ≈ 1)"),
        "flat-in-mask": ([put("flat.mrc", np.where(sim.mask, 0.5, sim.map)), "--mask",
                          demo_maps["mask"]], "constant inside the mask (≈ 0.5)"),
        "no-density": ([demo_maps["map"], "--mask", put("solvent.mrc", solvent)],
                       "the mask covers no density"),
        "nyquist": ([coarse, "--model", "standard"], "Nyquist limit 26 Å is coarser than"),
        "model": ([demo_maps["map"], "--model", "fancy"],
                  "model 'fancy' is not one of auto, standard, high, coarse, nor a trained"),
        "truncated": ([str(tmp_path / "cut.mrc")], "is truncated: 200000 bytes"),
        "device": ([demo_maps["map"], "--device", "tpu"], "--device 'tpu': use auto, cpu, gpu"),
        "cmap": ([demo_maps["map"], "--cmap", "rainbowish"], "unknown colour map 'rainbowish'"),
    }


@pytest.mark.parametrize("case", ["empty", "constant", "near-constant", "flat-in-mask",
                                  "no-density", "nyquist", "model", "truncated", "device",
                                  "cmap"])
def test_estimate_refuses_with_one_line(deepres, tmp_path, demo_maps, case):
    args, message = _estimate_refusals(tmp_path, demo_maps)[case]
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = deepres("estimate", *args, "-o", out / "loc.mrc", "--histogram", out / "h.png")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("deepres: error: "), r.stderr
    assert message in r.stderr
    assert "--sampling" not in r.stderr.split("deepres train")[0] and r.stdout == ""
    assert not out.exists() or not any(out.iterdir())
    assert time.perf_counter() - t0 < 20  # refused before the network loads


def test_info_and_sharpening_suggest_only_their_options(deepres, tmp_path, demo_maps):
    from deepres_plugin.backend.volume import Volume, write_volume

    const = write_volume(str(tmp_path / "c.mrc"), Volume(np.full((20, 20, 20), 3.0), 1.0))
    r = deepres("info", const)
    assert r.returncode == 0 and "resolution   not estimated: cannot build an automatic mask" \
        in r.stdout and "--mask" not in r.stdout
    r = deepres("sharpening", demo_maps["map"], "--half1", demo_maps["map"], "--half2",
                demo_maps["map"], "--model", "fitted.cif", "-o", tmp_path / "sw")
    assert r.returncode == 2 and "give it with --atoms" in r.stderr


def _start(args, **kw):
    import subprocess as sp

    env = dict(os.environ, MPLBACKEND="Agg")
    return sp.Popen([str(DEEPRES), *map(str, args)], stdout=sp.PIPE, stderr=sp.PIPE, text=True,
                    env=env, **kw)


def _signal_in_write_phase(out, demo_maps, signum):
    """Run an estimate, freeze it (SIGSTOP) as soon as a temporary output appears, send
    ``signum`` and let it go on; returns (return code, stderr, files left)."""
    p = _start(["estimate", demo_maps["map"], "-o", out / "loc.mrc", "--model", "standard",
                "--histogram", out / "h.png", "--slices", out / "s.png", "--chimerax",
                out / "c.cxc"])
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline:
        if any(n.startswith(".tmp_") for n in os.listdir(out)):  # the write phase has begun
            p.send_signal(signal.SIGSTOP)
            p.send_signal(signum)
            p.send_signal(signal.SIGCONT)
            break
        time.sleep(0.002)
    _, err = p.communicate(timeout=60)
    return p.returncode, err, sorted(os.listdir(out))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_in_the_write_phase_leaves_nothing(tmp_path, demo_maps, signum):
    """All or nothing: a signal during the writes leaves no file; one that lands after the
    renames (a loaded CI machine may see the last temporary name too late) leaves the whole
    set. Either way no temporary file. Up to 3 tries to catch the writes."""
    name = signal.Signals(signum).name
    whole = sorted(["c.cxc", "s.png", "h.png", "loc_mask.mrc", "loc.mrc", "loc.json"])
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        rc, err, left = _signal_in_write_phase(out, demo_maps, signum)
        assert left in ([], whole), (rc, err, left)
        if rc == 128 + signum:
            assert err.strip().splitlines()[-1] == (f"deepres: error: interrupted ({name}); no "
                                                    "partial output was kept")
        else:
            assert rc == 0 and left == whole, (rc, err, left)
        if left == []:
            assert rc == 128 + signum
            return
    pytest.fail("the signal never landed in the write phase in 3 tries")


def test_ctrl_c_while_the_model_loads_says_interrupted(tmp_path, demo_maps):
    p = _start(["estimate", demo_maps["map"], "--mask", demo_maps["mask"], "-o",
                tmp_path / "loc.mrc", "--model", "standard"])
    for line in p.stderr:
        if line.startswith("loading the standard model"):
            p.send_signal(signal.SIGINT)
            break
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted (SIGINT)" in err and "weights" not in err
    assert os.listdir(tmp_path) == []


def test_full_disk_removes_the_set_and_names_the_file(tmp_path, demo_maps):
    import resource

    def small_files():  # as if the disk filled: any file beyond 300 kB fails to write
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))

    p = _start(["estimate", demo_maps["map"], "-o", tmp_path / "loc.mrc", "--model",
                "standard", "--no-progress", "--histogram", tmp_path / "h.png"],
               preexec_fn=small_files)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2
    assert err == f"deepres: error: File too large: {tmp_path / 'loc.mrc'}\n"
    assert os.listdir(tmp_path) == []


def test_quiet_terminal_one_line_per_warning(deepres, tmp_path, demo_maps):
    from deepres_plugin.backend.volume import Volume, write_volume

    sim = demo_maps["sim"]
    mask = sim.mask.copy()
    mask[0, 18:24, 18:24] = True  # the mask touches the box edge: a warning
    kp = write_volume(str(tmp_path / "edge.mrc"), Volume(mask.astype(np.float32), 1.0))
    r = deepres("estimate", demo_maps["map"], "--mask", kp, "-o", tmp_path / "loc.mrc",
                "--model", "standard", "--device", "cpu", "--threads", "1")
    assert r.returncode == 0, r.stderr
    warning = "warning: mask touches the box edge: values near the edge are less reliable"
    lines = r.stderr.splitlines()
    assert lines.count(warning) == 1 and "warning" not in r.stdout.replace("1 warning(s)", "")
    assert "\r" not in r.stderr  # not a terminal: plain lines, no bars
    assert lines[:3] == ["map 42 x 42 x 72 voxels at 1 Å/px, 16046 voxels in the mask",
                         "loading the standard model",
                         "standard model (1 Å/px, 2.5–13 Å): resampling the map to its grid, "
                         "then tiles"]
    assert set(lines[3:]) == {warning, "writing 2 files"}  # nothing from TensorFlow
    summary = json.loads((tmp_path / "loc.json").read_text())
    assert summary["warnings"].count(warning[len("warning: "):]) == 1
    assert summary["clamp"][0] < summary["clamp"][1]
    r = deepres("estimate", demo_maps["map"], "-o", tmp_path / "g.mrc", "--device", "gpu:3",
                "--mask", demo_maps["mask"])
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith(
        "deepres: error: --device gpu:3: TensorFlow sees ") and "use --device cpu" in r.stderr
