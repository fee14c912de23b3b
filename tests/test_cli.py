"""The `deepres` console script, run as users run it (subprocess of the venv's executable)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest

from deepres_plugin.backend.volume import read_volume

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
    (["--chain-resolution", "A:3"], "bad --chain-resolution item 'A:3'"),
    (["--chain-resolution", "A=3"], "no resolution given for chain(s) B"),
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


def test_demo_runs_into_a_folder(deepres, tmp_path):
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
