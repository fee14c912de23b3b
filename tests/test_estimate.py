"""Estimation with the shipped models: accuracy on `val` maps, headers, determinism, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from deepres_plugin.backend import estimate as E
from deepres_plugin.backend import samples, simulate
from deepres_plugin.backend.volume import Volume, read_volume, write_volume

DEEPRES = Path(sys.executable).parent / "deepres"


@pytest.fixture(scope="module")
def val_structure():
    return simulate.load_structure(os.path.join(samples.data_dir(),
                                                "structures/3kcs.cif.gz"))  # split: val


_TARGET = pytest.mark.xfail(strict=True, reason=(
    "issue 4 target (0.5 Å) not met at 8 Å on 3kcs: the shipped, calibrated standard model "
    "reads 8.68 Å (raw 8.80; see wiki/Benchmarks.md); remove when a better model passes"))


@pytest.mark.parametrize("res, tol", [(4.0, 0.5), (8.0, 1.0),
                                      pytest.param(8.0, 0.5, marks=_TARGET)])
def test_standard_model_uniform_val_map(val_structure, res, tol):
    sim = simulate.simulate(val_structure, 1.0, res, noise=0.02, seed=1)
    out = E.estimate(Volume(sim.map, 1.0), sim.mask, "standard")
    assert out.stats["n_voxels"] == int(sim.mask.sum())
    assert abs(out.stats["median"] - res) <= tol


def test_every_masked_voxel_evaluated_and_clamped(val_structure):
    sim = simulate.simulate(val_structure, 1.0, 6.0, seed=2)
    out = E.estimate(Volume(sim.map, 1.0), sim.mask, "standard")
    inside = out.resolution[sim.mask]
    assert np.all(inside >= 2.5) and np.all(inside <= 13.0)
    assert np.all(out.resolution[~sim.mask] == 0)
    # no checkerboard: neighbours along x differ smoothly
    assert np.median(np.abs(np.diff(out.resolution, axis=2)[sim.mask[:, :, 1:] & sim.mask[:, :, :-1]])) < 0.3


def test_other_sampling_non_cubic_header_kept_and_deterministic(tmp_path, val_structure):
    sim = simulate.simulate(val_structure, 1.3, 5.0, seed=3)
    data = sim.map[:, 2:, 5:]  # non-cubic
    mask = sim.mask[:, 2:, 5:]
    vol = Volume(data, 1.3, origin=(12.5, -40.0, 7.25), nstart=(-3, 4, 11))
    mp, kp, op = tmp_path / "m.mrc", tmp_path / "k.mrc", tmp_path / "out.mrc"
    write_volume(str(mp), vol)
    write_volume(str(kp), vol, mask.astype(np.float32))
    r1 = E.run(str(mp), str(op), str(kp), "standard")
    with mrcfile.open(mp) as a, mrcfile.open(op) as b:
        for f in ("nx", "ny", "nz", "nxstart", "nystart", "nzstart", "mx", "my", "mz", "cella",
                  "origin", "mapc", "mapr", "maps"):
            assert np.array_equal(np.asarray(a.header[f]), np.asarray(b.header[f])), f
        assert b.data.dtype == np.float32
    out = read_volume(str(op))
    assert np.array_equal(out.data > 0, mask)
    assert abs(r1.stats["median"] - 5.0) <= 0.75
    first = out.data.copy()
    E.run(str(mp), str(op), str(kp), "standard")
    assert np.array_equal(read_volume(str(op)).data, first)
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["model"] == "standard" and summary["sampling"] == pytest.approx(1.3)
    for key in ("median", "mean", "sd", "p2_5", "p5", "p20", "p25", "p50", "p75", "p95", "p97_5"):
        assert key in summary["stats"]
    assert summary["stats"]["median"] == pytest.approx(float(np.median(out.data[mask])), abs=1e-4)


def test_cli_estimate_auto_mask_and_extras(tmp_path, val_structure):
    sim = simulate.simulate(val_structure, 1.0, 4.5, noise=0.03, seed=4)
    mp = tmp_path / "map.mrc"
    write_volume(str(mp), Volume(sim.map, 1.0, origin=(5.0, 6.0, 7.0)))
    out = tmp_path / "loc.mrc"
    proc = subprocess.run([str(DEEPRES), "estimate", str(mp), "-o", str(out), "--no-progress",
                           "--histogram", str(tmp_path / "h.png"), "--slices",
                           str(tmp_path / "s.png"), "--chimerax", str(tmp_path / "c.cxc")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "median" in proc.stdout
    mask = read_volume(str(tmp_path / "loc_mask.mrc"))
    assert mask.origin == (5.0, 6.0, 7.0) and mask.data.any()
    for name in ("h.png", "s.png"):
        assert (tmp_path / name).stat().st_size > 5000
    cxc = (tmp_path / "c.cxc").read_text()
    assert 'open "map.mrc"' in cxc and 'open "loc.mrc"' in cxc  # relative to the script
    summary = json.loads((tmp_path / "loc.json").read_text())
    assert abs(summary["stats"]["median"] - 4.5) <= 0.75
    # no solvent-noise measurement feeds the shipped models; the JSON says which answered
    assert summary["noise_sd"] is None
    assert summary["models"]["standard"] > 0.9 * summary["stats"]["n_voxels"]
    assert summary["calibrated"] is True
    raw = tmp_path / "raw.mrc"
    proc = subprocess.run([str(DEEPRES), "estimate", str(mp), "--mask",
                           str(tmp_path / "loc_mask.mrc"), "-o", str(raw), "--no-progress",
                           "--no-calibration"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "raw.json").read_text())["calibrated"] is False
    assert np.abs(read_volume(str(raw)).data - read_volume(str(out)).data).max() > 0.01


def test_cli_bad_model_is_one_line_error(tmp_path, val_structure):
    sim = simulate.simulate(val_structure, 1.0, 5.0, seed=5)
    mp = tmp_path / "map.mrc"
    write_volume(str(mp), Volume(sim.map, 1.0))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([str(DEEPRES), "estimate", str(mp), "-o", str(tmp_path / "o.mrc"),
                           "--model", str(bad), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "model card" in proc.stderr
    assert not (tmp_path / "o.mrc").exists()


def test_cli_real_map_chimerax_colours_only_the_mask(tmp_path, real_map, surface_of):
    """EMD-5168 (.map.gz, noisy, helical): the script opens a decompressed copy by a relative
    path, contours at a level from the map inside the mask, and colours < 1 % of its coloured
    vertices outside the mask (sampling the raw map, which is 0 there, ~40 % were)."""
    out = tmp_path / "res"
    proc = subprocess.run([str(DEEPRES), "estimate", real_map, "-o", str(out / "loc.mrc"),
                           "--model", "standard", "--chimerax", str(tmp_path / "view.cxc"),
                           "--histogram", str(out / "h.png"), "--cmap", "cividis"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["res", "view.cxc", "view_map.mrc"]
    assert sorted(os.listdir(out)) == ["h.png", "loc.json", "loc.mrc", "loc_mask.mrc"]
    surface = surface_of(str(tmp_path / "view.cxc"))
    assert 'open "view_map.mrc"' in surface["text"] and 'open "res/loc.mrc"' in surface["text"]
    assert surface["coloured"] > 0.5 * surface["vertices"] > 10_000
    assert surface["coloured_outside"] < 0.01 * surface["coloured"]
    assert surface["naive_zero"] > 0.005
    summary = json.loads((out / "loc.json").read_text())
    lo, hi = summary["colour_map"]["range"]
    assert summary["colour_map"]["name"] == "cividis"
    assert surface["stops"][0][0] == pytest.approx(lo) and surface["stops"][-3][0] == \
        pytest.approx(hi)
    assert surface["stops"][0][1] == "#00224e"  # cividis, as the histogram
    assert summary["warnings"].count("mask touches the box edge: values near the edge are "
                                     "less reliable") == 1
