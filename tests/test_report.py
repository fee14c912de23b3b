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
    text = report.chimerax_script("map.mrc", "sub/locres.mrc", vol, (3.1, 8.0), level=1.5,
                                  cmap="viridis")
    lines = text.splitlines()
    assert 'open "map.mrc"' in lines and 'open "sub/locres.mrc"' in lines
    assert "volume #1 voxelSize 1.74200 origin -87.1000,-87.1000,-87.1000 style surface " \
           "level 1.5" in lines
    assert "volume #2 voxelSize 1.74200 origin -87.1000,-87.1000,-87.1000" in lines
    # 0 outside the mask becomes 10000, which the palette paints grey (never the best colour)
    assert "volume threshold #2 minimum 0.001 set 10000 modelId #3" in lines
    palette = next(ln for ln in lines if ln.startswith("color sample #1 map #3 palette "))
    stops = [p.split(",") for p in palette.split()[-1].split(":")]
    assert [float(v) for v, _ in stops] == pytest.approx(
        list(np.linspace(3.1, 8.0, report.PALETTE_STEPS)) + [100.0, 101.0], abs=0.006)
    assert stops[0][1] == "#440154" and stops[-3][1] == stops[-2][1] == "#fde725"  # viridis
    assert stops[-1][1] == report.NO_VALUE_COLOUR
    key = next(line for line in lines if line.startswith("key ")).split()
    assert key[1] == "#440154:3.1Å" and key[report.PALETTE_STEPS] == "#fde725:8.0Å"
    assert sum(k.endswith("Å") for k in key) == 5  # 9 colours, 5 labels


def test_write_chimerax_relative_paths_and_gz_copy(real_map, tmp_path):
    vol = read_volume(real_map)
    res = Volume(np.full(vol.shape, 5.0, np.float32), vol.sampling)
    from deepres_plugin.backend.volume import write_volume

    res_path = write_volume(str(tmp_path / "loc.mrc"), res)
    script = report.write_chimerax(str(tmp_path / "view" / "v.cxc"), real_map, res_path, vol,
                                   (4, 6))
    text = open(script, encoding="utf-8").read()
    assert 'open "v_map.mrc"' in text and 'open "../loc.mrc"' in text  # from the script's folder
    assert ".gz" not in text and "/" + tmp_path.name not in text
    copy = read_volume(str(tmp_path / "view" / "v_map.mrc"))  # ChimeraX cannot open .map.gz
    assert np.array_equal(copy.data, vol.data) and copy.sampling == vol.sampling
    assert sorted(os.listdir(tmp_path / "view")) == ["v.cxc", "v_map.mrc"]
    assert report.chimerax_map_copy("a/b.cxc", "m.mrc") is None


def test_contour_level_from_the_map_inside_the_mask(two_chain, real_map):
    from deepres_plugin.backend.masks import auto_mask

    vol = Volume(two_chain.map, 1.0, (-12.5, 3.25, 40.0), (7, 7, 7))
    text = report.chimerax_script("m.mrc", "r.mrc", vol, (3, 6), mask=two_chain.mask)
    assert "origin -12.5000,3.2500,40.0000" in text  # a non-zero header origin wins
    level = float(text.split(" level ")[1].split()[0])
    assert level == pytest.approx(report.contour_level(two_chain.map, two_chain.mask), rel=1e-5)
    real = read_volume(real_map)
    for data, mask in ((two_chain.map, two_chain.mask),
                       (real.data, auto_mask(real.data, real.sampling))):
        level = report.contour_level(data, mask)
        assert np.mean(mask[data > level]) > 0.9  # the surface is the masked density ...
        assert 0.1 < np.mean(data[mask] > level) < 0.6  # ... a good part of it
    # EMD-5168: 0.76 SD (the 65th percentile in the mask) put 25 % of that volume outside it
    assert np.mean(mask[real.data > 0.76 * real.data.std()]) < 0.8


def test_colour_range_and_colour_maps():
    values = np.linspace(3.0, 8.0, 1001)
    assert report.colour_range(values) == (3.1, 7.9)  # 2.5–97.5 %: 3.125, 7.875 → 0.1 Å steps
    assert report.colour_range(np.full(10, 4.0)) == (3.5, 4.5)
    assert report.hex_colours("viridis", 3) == ["#440154", "#21918c", "#fde725"]
    with pytest.raises(InputError, match="unknown colour map 'nope'.*viridis"):
        report.check_cmap("nope")


def test_histogram_marks_clamped_voxels_and_uses_the_colour_map():
    rng = np.random.default_rng(1)
    values = np.concatenate([np.full(300, 2.5), rng.uniform(2.6, 9.0, 700), np.full(50, 13.0)])
    fig = report.histogram_figure(values, clamp=(2.5, 13.0), cmap="viridis", vrange=(3, 8),
                                  clamp_why=("Nyquist limit", "the worst value"))
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "300 voxels (28.6 %) clamped at the floor 2.50 Å:\nNyquist limit" in labels
    assert "50 voxels (4.8 %) clamped at the ceiling 13.00 Å:\nthe worst value" in labels
    bars = ax.patches
    assert bars[0].get_hatch() == "////" and bars[-1].get_hatch() == "////"
    assert sum(bool(b.get_hatch()) for b in bars) == 2
    from matplotlib import colormaps

    assert bars[0].get_facecolor() == pytest.approx(colormaps["viridis"](0.0))  # below range
    assert bars[-1].get_facecolor() == pytest.approx(colormaps["viridis"](1.0))
    plain = report.histogram_figure(values[300:1000])
    assert not any(b.get_hatch() for b in plain.axes[0].patches)


def test_slice_positions_in_angstrom(two_chain):
    vol = Volume(two_chain.map, 1.5, (-12.0, 3.0, 40.0))
    fig = report.slices_figure(two_chain.map, two_chain.truth, two_chain.mask, axis="x",
                               index=10, where=vol)
    assert fig.axes[0].get_title() == "x = 3.0 Å (voxel 10)"  # −12 + 10 × 1.5
    fig = report.slices_figure(two_chain.map, two_chain.truth, two_chain.mask, axis="z",
                               index=4)
    assert fig.axes[0].get_title() == "z = voxel 4"


@pytest.mark.parametrize("res,noise", [(4.5, 0.05), (8.0, 0.05), (6.0, 0.0)])
def test_power_resolution_on_simulated_maps(st_1mol, res, noise):
    sim = simulate(st_1mol, 1.0, res, noise=noise, seed=2)
    assert report.power_resolution(sim.map, 1.0) == pytest.approx(res, abs=1.0)


def test_power_resolution_on_real_map(real_map):
    vol = read_volume(real_map)  # EMD-5168, deposited at 6.6 Å; the heuristic reads 6.8 Å
    assert 6.0 < report.power_resolution(vol.data, vol.sampling) < 7.5
