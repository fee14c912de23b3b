"""Oversharpening check (backend/sharpening.py, `deepres sharpening`)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from deepres_plugin.backend import sharpening as SH
from deepres_plugin.backend.estimate import estimate
from deepres_plugin.backend.filters import frequency_squared, radial_power
from deepres_plugin.backend.localfsc import local_fsc
from deepres_plugin.backend.simulate import load_structure, simulate
from deepres_plugin.backend.volume import InputError, Volume, read_volume, write_volume


def test_parse_range():
    b = SH.parse_range("-300:0:20")
    assert len(b) == 16 and b[0] == -300.0 and b[-1] == 0.0 and b[1] - b[0] == 20.0
    assert SH.parse_range("0,-60,-100") == [-100.0, -60.0, 0.0]
    assert SH.parse_range("-50:50:25") == [-50.0, -25.0, 0.0, 25.0, 50.0]
    for bad, msg in (("-300:0:0", "step"), ("0:-300:20", "START"), ("a:b:c", "bad B range"),
                     ("-300:0", "bad B range"), ("-10000:0:1", "more than 200")):
        with pytest.raises(InputError, match=msg):
            SH.parse_range(bad)


def test_crossing_interpolates_and_says_when_curves_do_not_meet():
    b = [0, -20, -40, -60]
    rec, met, best, msg = SH.crossing(b, [5.0, 4.4, 3.8, 3.2], 4.1)
    assert met and rec == pytest.approx(-30.0) and best == rec and "-30.0" in msg
    rec, met, best, msg = SH.crossing(b, [5.0, 4.9, 4.8, 4.7], 4.1)
    assert not met and rec is None and best == -60 and "more negative" in msg
    rec, met, best, msg = SH.crossing(b, [3.9, 3.5, 3.0, 2.8], 4.1)
    assert not met and rec is None and best == 0 and "already" in msg
    # the order of the B list does not matter
    assert SH.crossing(b[::-1], [3.2, 3.8, 4.4, 5.0], 4.1)[0] == pytest.approx(-30.0)


def test_sharpen_boosts_and_lowpass_cuts(st_5pti):
    sim = simulate(st_5pti, 1.0, 4.0, padding=10, noise=0.05, seed=2)
    assert np.array_equal(SH.sharpen(sim.map, 1.0, 0.0), sim.map)
    f0, f1 = (np.fft.rfftn(m) for m in (sim.map, SH.sharpen(sim.map, 1.0, -80.0)))
    s2 = frequency_squared(sim.map.shape, 1.0)
    band = (s2 > 0.01) & (s2 < 0.04)  # amplitude gain exp(80 s²/4): 1.22 to 2.23
    expected = f0[band] * np.exp(20 * s2[band])
    assert np.abs(f1[band] - expected).max() < 1e-3 * np.abs(f0).max()  # float32 FFTs
    f, p1 = radial_power(SH.sharpen(sim.map, 1.0, -80.0), 1.0)
    cut = SH.sharpen(sim.map, 1.0, -80.0, lowpass=5.0)
    _, p2 = radial_power(cut, 1.0)
    beyond = f > 1 / 5.0 + 0.02 + 1.0 / min(cut.shape)  # the filter's edge + one shell
    assert np.all(p2[beyond] < 1e-8 * p1[beyond])


def test_model_map_lands_on_the_map_grid(st_5pti):
    sim = simulate(st_5pti, 1.0, 3.0, padding=10)
    vol = Volume(sim.map, 1.0, sim.origin)
    model = SH.model_map(st_5pti, vol, 3.0)
    assert SH.correlation(model, sim.map, sim.mask) > 0.9999
    # the same grid described by nstart instead of origin (whole voxels)
    shift = np.round(np.asarray(sim.origin)).astype(int)
    sim2 = simulate(st_5pti, 1.0, 3.0, shape=sim.map.shape)
    moved = SH.model_map(st_5pti, Volume(sim2.map, 1.0, (0, 0, 0), tuple(shift)), 3.0)
    ref = SH.model_map(st_5pti, Volume(sim2.map, 1.0, tuple(map(float, shift))), 3.0)
    assert np.allclose(moved, ref)
    with pytest.raises(InputError, match="inside the map"):
        SH.model_map(st_5pti, Volume(sim.map, 1.0, (500.0, 0.0, 0.0)), 3.0)


def test_model_map_on_a_real_map_uses_nstart(real_map, data_path):
    """EMD-5168 (origin 0, nstart −50: voxel 0 at −87.1 Å) with the 3MFP actin subunit fitted
    in its frame: the simulated model correlates with the map around the model (measured
    0.64 at 6.6 Å); the same model 5 voxels off reads 0.04."""
    from deepres_plugin.backend.volume import read_volume

    vol = read_volume(real_map)
    st = load_structure(data_path("maps/emd_5168_fit_3mfp.cif.gz"))
    model = SH.model_map(st, vol, 6.6)
    near = model > 0.1 * model.max()
    assert SH.correlation(model, vol.data, near) > 0.6
    off = Volume(vol.data, vol.sampling, (0.0, 0.0, 0.0), (-45, -50, -50))
    assert SH.correlation(SH.model_map(st, off, 6.6), vol.data, near) < 0.2


@pytest.fixture(scope="module")
def s5_maps(data_path):
    """Paper Fig. S5 set-up: a 3.5 Å map of 3kcs (val split) with Gaussian noise 0.08 × max
    (full map = mean of two half maps with independent noise 0.08·√2 × max)."""
    st = load_structure(data_path("structures/3kcs.cif.gz"))
    sim = simulate(st, 1.0, 3.5, seed=0)
    rng = np.random.default_rng(11)
    sd = 0.08 * np.sqrt(2) * float(sim.map.max())
    h1, h2 = (sim.map + rng.normal(0, sd, sim.map.shape).astype(np.float32) for _ in (1, 2))
    return st, sim, h1, h2


def test_fig_s5_deepres_sees_sharpening_local_fsc_does_not(s5_maps):
    """Paper Fig. S5: sharpening (B = −60, −100 Å²) makes the DeepRes median better while the
    half-map local FSC stays put (test_localfsc checks the latter on sharpened halves too).
    Measured with the shipped `standard` model (B applied with the sweep's low-pass at the
    global FSC, 3.21 Å): DeepRes median 3.14 → 2.50 → 2.50 Å (2.50 = the model's lower clamp),
    local FSC 3.38 Å throughout. B alone (no low-pass) reads 3.14 → 13.00 → 13.00 Å instead:
    the amplified noise out to the box corners looks like low resolution to the network."""
    st, sim, h1, h2 = s5_maps
    vol = Volume(0.5 * (h1 + h2), 1.0, sim.origin)
    res, arrays = SH.sweep(vol, h1, h2, sim.mask, [0.0, -60.0, -100.0], "standard", st)
    med = dict(zip(res.bfactors, res.deepres["p50"]))
    assert res.bfactors == [0.0, -60.0, -100.0] and res.model == "standard"
    assert med[-60.0] < med[0.0] - 0.2 and med[-100.0] <= med[-60.0] + 0.05
    assert 3.0 < res.localfsc["p50"] < 3.8 and res.lowpass == pytest.approx(3.2, abs=0.3)
    for b in (-60.0, -100.0):
        s1, s2 = (SH.sharpen(h, 1.0, b, res.lowpass) for h in (h1, h2))
        lf = local_fsc(s1, s2, 1.0, sim.mask, box=res.localfsc_box)
        assert np.median(lf.resolution[sim.mask]) == pytest.approx(res.localfsc["p50"],
                                                                   abs=0.05)
    assert res.cc is not None and res.cc[0] > 0.95 and res.cc[0] > res.cc[2]
    assert arrays["sharpened"].shape == vol.shape and arrays["deepres"][~sim.mask].max() == 0


def test_blurred_map_recommended_b_undoes_the_blur(data_path):
    """A 3.5 Å map blurred with B = +60 Å² before the noise (0.08 × max) needs sharpening: the
    recommended B should undo the blur, and the model–map CC should peak near there too.
    Measured with the shipped `standard` model: recommended B = −46 Å² (1j6z −46, 4gxy −41 in
    benchmarks/sharpening_s5.py), CC peak at −60 Å², DeepRes 20 % at B = 0: 4.7 Å vs the local
    FSC's 3.34 Å."""
    st = load_structure(data_path("structures/3kcs.cif.gz"))
    sim = simulate(st, 1.0, 3.5, seed=0)
    signal = SH.sharpen(sim.map, 1.0, 60.0)
    rng = np.random.default_rng(11)
    sd = 0.08 * np.sqrt(2) * float(signal.max())
    h1, h2 = (signal + rng.normal(0, sd, signal.shape).astype(np.float32) for _ in (1, 2))
    vol = Volume(0.5 * (h1 + h2), 1.0, sim.origin)
    res, _ = SH.sweep(vol, h1, h2, sim.mask, SH.parse_range("-120:0:20"), "standard", st)
    assert res.met and -80.0 <= res.recommended_b <= -35.0, res.message
    assert res.bfactors[int(np.argmax(res.cc))] in (-40.0, -60.0, -80.0)
    assert res.deepres["p20"][0] > res.localfsc["p20"] + 0.5  # blurred: DeepRes sees it


def test_cli_sweep_writes_table_plot_and_maps(deepres, st_5pti, data_path, tmp_path):
    sim = simulate(st_5pti, 1.0, 3.5, padding=10, seed=0)
    rng = np.random.default_rng(4)
    sd = 0.1 * float(sim.map.max())
    h1, h2 = (sim.map + rng.normal(0, sd, sim.map.shape).astype(np.float32) for _ in (1, 2))
    grid = Volume(sim.map, 1.0, sim.origin, (0, 0, 0))
    files = {}
    for name, data in (("map", 0.5 * (h1 + h2)), ("h1", h1), ("h2", h2),
                       ("mask", sim.mask.astype(np.float32))):
        files[name] = write_volume(str(tmp_path / f"{name}.mrc"), grid, data)
    out = tmp_path / "sweep"
    r = deepres("sharpening", files["map"], "--half1", files["h1"], "--half2", files["h2"],
                "--mask", files["mask"], "--atoms", data_path("structures/5pti.cif.gz"),
                "--b-range", "-100:0:50", "-o", out, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum(line.startswith("B ") for line in lines) == 3 and "local FSC (0.5" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["sharpening.csv", "sharpening.json", "sharpening.png", "localfsc.mrc",
         "sharpened.mrc", "deepres.mrc"])
    rows = list(csv.DictReader(open(out / "sharpening.csv")))
    assert [float(row["b_factor"]) for row in rows] == [0.0, -50.0, -100.0]
    summary = json.loads((out / "sharpening.json").read_text())
    assert summary["bfactors"] == [0.0, -50.0, -100.0] and len(summary["cc"]) == 3
    for row, cc, p20 in zip(rows, summary["cc"], summary["deepres"]["p20"]):
        assert float(row["model_cc"]) == pytest.approx(cc, abs=1e-5)
        assert float(row["deepres_p20"]) == pytest.approx(p20, abs=1e-4)
        assert 0.5 < cc <= 1.0
    assert summary["met"] == (summary["recommended_b"] is not None)
    assert summary["message"] in r.stdout
    origin = read_volume(files["map"]).origin
    for name in ("sharpened.mrc", "deepres.mrc", "localfsc.mrc"):
        v = read_volume(str(out / name))
        assert v.shape == sim.map.shape and v.sampling == 1.0 and v.origin == origin
    lf = read_volume(str(out / "localfsc.mrc")).data
    assert np.median(lf[sim.mask]) == pytest.approx(summary["localfsc"]["p50"], abs=1e-4)
    assert (out / "sharpening.png").stat().st_size > 10_000


def test_cli_sweep_refuses_other_grid(deepres, tmp_path):
    a = Volume(np.random.default_rng(0).random((24, 24, 24), np.float32), 1.0)
    write_volume(str(tmp_path / "map.mrc"), a)
    write_volume(str(tmp_path / "h.mrc"), Volume(a.data[:, :, :20].copy(), 1.0))
    out = tmp_path / "o"
    r = deepres("sharpening", tmp_path / "map.mrc", "--half1", tmp_path / "h.mrc", "--half2",
                tmp_path / "h.mrc", "-o", out)
    assert r.returncode == 2 and "one grid" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())
    r = deepres("sharpening", tmp_path / "map.mrc", "--half1", "x", "--half2", "y", "-o", out,
                "--b-range", "-100:0:0")
    assert r.returncode == 2 and "step must be > 0" in r.stderr


def test_cli_sweep_with_model_reference_and_no_half_maps(deepres, st_5pti, data_path,
                                                         tmp_path):
    """`deepres sharpening MAP --atoms MODEL` without half maps: the reference is the local FSC
    of the map vs the model, and the whole result set is written."""
    sim = simulate(st_5pti, 1.0, 3.5, padding=10, noise=0.08, seed=0)
    grid = Volume(sim.map, 1.0, sim.origin)
    mpath = write_volume(str(tmp_path / "map.mrc"), grid)
    out = tmp_path / "sweep"
    r = deepres("sharpening", mpath, "--atoms", data_path("structures/5pti.cif.gz"),
                "--b-range", "-50,0", "--model", "standard", "-o", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "local FSC (0.5, " in r.stdout and "of the map vs its model" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["sharpening.csv", "sharpening.json", "sharpening.png", "localfsc.mrc",
         "sharpened.mrc", "deepres.mrc", "mask.mrc"])
    summary = json.loads((out / "sharpening.json").read_text())
    assert summary["reference"] == "model" and summary["half1"] is None
    assert summary["bfactors"] == [0.0, -50.0] and len(summary["cc"]) == 2
    assert 2.8 < summary["localfsc"]["p50"] < 4.2 and "the model" in summary["message"]
    lf = read_volume(str(out / "localfsc.mrc"))
    assert lf.origin == read_volume(mpath).origin and lf.shape == sim.map.shape
    assert (out / "sharpening.png").stat().st_size > 10_000


def test_cli_sweep_refuses_missing_reference(deepres, tmp_path):
    a = Volume(np.random.default_rng(0).random((24, 24, 24), np.float32), 1.0)
    path = write_volume(str(tmp_path / "map.mrc"), a)
    out = tmp_path / "o"
    for args, msg in ((("--half1", path), "both half maps"), ((), "--atoms")):
        r = deepres("sharpening", path, *args, "-o", out)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()
    with pytest.raises(InputError, match="atomic model is needed"):
        SH.sweep(a, None, None, a.data > 0.5, [0.0])


def test_blurred_map_model_reference_recommends_sharpening(data_path):
    """The blurred 3kcs map of the test above (B = +60 Å², noise 0.08 × max), no half maps:
    the reference is the local FSC of the map vs the model. Measured (standard model): local
    FSC 20 % 3.25 Å (the filter's edge 1/(1/3.5 + 0.02) = 3.27 Å), recommended B −39.5 Å²
    (half maps: −46 Å²), model–map CC peak at −60 Å²."""
    st = load_structure(data_path("structures/3kcs.cif.gz"))
    sim = simulate(st, 1.0, 3.5, seed=0)
    signal = SH.sharpen(sim.map, 1.0, 60.0)
    rng = np.random.default_rng(11)
    data = signal + rng.normal(0, 0.08 * float(signal.max()), signal.shape).astype(np.float32)
    vol = Volume(data, 1.0, sim.origin)
    res, _ = SH.sweep(vol, None, None, sim.mask, SH.parse_range("-120:0:20"), "standard", st)
    assert res.reference == "model" and res.threshold == 0.5
    assert 3.0 < res.localfsc["p20"] < 3.8
    assert res.met and -90.0 <= res.recommended_b <= -20.0, res.message
    assert res.bfactors[int(np.argmax(res.cc))] in (-40.0, -60.0, -80.0)
