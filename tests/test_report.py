"""Report: statistics on known arrays, PNGs that hold a real picture, the ChimeraX script, and
the power-spectrum resolution heuristic on simulated maps of known resolution."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepres_plugin.backend import report
from deepres_plugin.backend.simulate import simulate
from deepres_plugin.backend.volume import InputError, Volume, read_volume


def test_stats_on_known_values():
    s = report.stats(np.arange(1, 101, dtype=np.float32))
    assert s["n_voxels"] == 100 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["median"] == s["p50"] == s["mean"] == 50.5
    assert s["sd"] == pytest.approx(np.sqrt((100 ** 2 - 1) / 12.0))
    # numpy's linear percentiles: 1 + q/100 × 99
    for key, q in (("p2_5", 2.5), ("p5", 5), ("p20", 20), ("p25", 25), ("p75", 75),
                   ("p95", 95), ("p97_5", 97.5)):
        assert s[key] == pytest.approx(1 + q / 100 * 99)
    assert set(s) == {"median", "mean", "sd", "p2_5", "p5", "p20", "p25", "p50", "p75", "p95",
                      "p97_5", "min", "max", "n_voxels"}
    assert json.loads(json.dumps(s)) == s  # plain Python numbers
    const = report.stats(np.full(7, 4.25))
    assert const["sd"] == 0.0 and const["n_voxels"] == 7
    assert {const[k] for k in const if k not in ("sd", "n_voxels")} == {4.25}


def test_stats_refuses_empty():
    with pytest.raises(InputError, match="no voxels"):
        report.stats(np.array([]))


@pytest.fixture(scope="module")
def two_chain(st_1mol):
    return simulate(st_1mol, 1.0, {"A": 3.0, "B": 6.0}, noise=0.05)


def _image(path):
    import matplotlib.image

    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def _coloured_fraction(img):
    rgb = img[..., :3]
    return float(np.mean(rgb.max(-1) - rgb.min(-1) > 0.25))


def test_histogram_png(two_chain, tmp_path):
    values = two_chain.truth[two_chain.mask]
    values = values + np.random.default_rng(0).normal(0, 0.3, values.size)
    path = report.histogram_png(values, str(tmp_path / "h.png"), bin_width=0.25,
                                title="two chains")
    img = _image(path)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert img[..., :3].std() > 0.1 and _coloured_fraction(img) > 0.02  # bars and median line
    assert os.listdir(tmp_path) == ["h.png"]
    with pytest.raises(InputError, match="bin width"):
        report.histogram_png(values, str(tmp_path / "x.png"), bin_width=0)
    with pytest.raises(InputError, match="bins"):
        report.histogram_png(values, str(tmp_path / "x.png"), bin_width=1e-5)
    assert os.listdir(tmp_path) == ["h.png"]


@pytest.mark.parametrize("kwargs,panels", [({}, 3), ({"axis": "y", "grid": True}, 4),
                                           ({"axis": "x", "index": 30}, 1)])
def test_slices_png(two_chain, tmp_path, kwargs, panels):
    path = report.slices_png(two_chain.map, two_chain.truth, two_chain.mask,
                             str(tmp_path / "s.png"), **kwargs)
    img = _image(path)
    assert _coloured_fraction(img) > 0.03  # the resolution overlay and the colour bar
    grey = img[..., :3].std(-1) < 0.02
    assert grey.mean() > 0.3  # the map in grey (and the white page)


def test_slices_refuse_bad_requests(two_chain, tmp_path):
    args = (two_chain.map, two_chain.truth, two_chain.mask, str(tmp_path / "s.png"))
    with pytest.raises(InputError, match="axis must be"):
        report.slices_png(*args, axis="w")
    with pytest.raises(InputError, match="outside the map"):
        report.slices_png(*args, axis="z", index=10_000)
    with pytest.raises(InputError, match="same shape"):
        report.slices_png(two_chain.map[:-1], *args[1:])
    assert not os.listdir(tmp_path)


def test_uniform_resolution_still_draws(two_chain, tmp_path):
    res = np.where(two_chain.mask, 4.0, 0.0).astype(np.float32)
    report.slices_png(two_chain.map, res, two_chain.mask, str(tmp_path / "u.png"))
    assert _coloured_fraction(_image(str(tmp_path / "u.png"))) > 0.02


def test_chimerax_script_uses_real_grid(real_map, tmp_path):
    vol = read_volume(real_map)  # origin 0 in the header, nstart −50: voxel 0 at −87.1 Å
    text = report.chimerax_script("/data/map.mrc", "/data/locres.mrc", vol, (3.1, 8.0),
                                  level=1.5)
    lines = text.splitlines()
    assert 'open "/data/map.mrc"' in lines and 'open "/data/locres.mrc"' in lines
    assert "volume #1 voxelSize 1.74200 origin -87.1000,-87.1000,-87.1000 style surface " \
           "level 1.5" in lines
    assert "volume #2 voxelSize 1.74200 origin -87.1000,-87.1000,-87.1000" in lines
    assert "color sample #1 map #2 palette blue:cyan:green:yellow:red range 3.10,8.00" in lines
    key = next(line for line in lines if line.startswith("key "))
    assert "blue:3.1Å" in key and "red:8.0Å" in key
    path = report.write_chimerax(str(tmp_path / "v.cxc"), "/data/map.mrc", "/data/locres.mrc",
                                 vol, (3.1, 8.0), level=1.5)
    assert open(path, encoding="utf-8").read() == text


def test_chimerax_header_origin_and_default_level(two_chain):
    vol = Volume(two_chain.map, 1.0, (-12.5, 3.25, 40.0), (7, 7, 7))
    text = report.chimerax_script("m.mrc", "r.mrc", vol, (3, 6), mask=two_chain.mask)
    assert "origin -12.5000,3.2500,40.0000" in text  # a non-zero header origin wins
    level = float(text.split(" level ")[1].split()[0])
    assert level == pytest.approx(np.percentile(two_chain.map[two_chain.mask], 65), rel=1e-5)
    # that surface encloses about the molecular volume: ~35 % of the mask
    assert 0.3 < np.mean(two_chain.map[two_chain.mask] > level) < 0.4


@pytest.mark.parametrize("res,noise", [(4.5, 0.05), (8.0, 0.05), (6.0, 0.0)])
def test_power_resolution_on_simulated_maps(st_1mol, res, noise):
    sim = simulate(st_1mol, 1.0, res, noise=noise, seed=2)
    assert report.power_resolution(sim.map, 1.0) == pytest.approx(res, abs=1.0)


def test_power_resolution_on_real_map(real_map):
    vol = read_volume(real_map)  # EMD-5168, deposited at 6.6 Å; the heuristic reads 6.8 Å
    assert 6.0 < report.power_resolution(vol.data, vol.sampling) < 7.5
