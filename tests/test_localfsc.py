"""Local FSC from half maps (backend/localfsc.py and `deepres localfsc`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import fft as sfft

from deepres_plugin.backend import localfsc as L
from deepres_plugin.backend.filters import apply_bfactor
from deepres_plugin.backend.simulate import load_structure, simulate
from deepres_plugin.backend.volume import InputError, Volume, read_volume, write_volume


def halves(sim, noise, seed=7):
    """Two half maps: the same noise-free signal plus independent Gaussian noise."""
    rng = np.random.default_rng(seed)
    sd = noise * float(sim.map.max())
    return tuple(sim.map + rng.normal(0, sd, sim.map.shape).astype(np.float32) for _ in (1, 2))


def test_shell_matrix_counts_full_fft_terms():
    n = 16
    k = sfft.fftfreq(n) * n
    r = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    expected = np.bincount(r.astype(int).ravel())[:n // 2 + 1]
    assert np.array_equal(L.shell_matrix(n).sum(axis=0), expected.astype(np.float32))


def test_crossing_interpolates_in_frequency_and_clamps():
    n, s = 20, 1.0
    curves = np.ones((3, n // 2 + 1), np.float32)
    curves[0, 4:] = [0.8, 0.2, 0.1, 0, 0, 0, 0]  # crosses 0.5 half-way between shells 4 and 5
    curves[1, 1:] = 0.1  # below at once: box size
    # row 2 never drops: Nyquist
    res = L.crossing_resolution(curves, n, s, 0.5)
    assert res == pytest.approx([n * s / 4.5, n * s, 2 * s], rel=1e-5)


def test_window_is_centred_and_soft():
    w = L.window(24)
    assert w[12, 12, 12] == 1.0 and w[0, 0, 0] == 0.0 and w.max() == 1.0
    assert np.allclose(w, w[::-1, :, :][np.r_[-1, 0:23]], atol=1e-6)  # symmetric about 12


def test_identical_and_independent_halves(st_5pti):
    sim = simulate(st_5pti, 1.0, 4.0, padding=16)
    rng = np.random.default_rng(1)
    same = L.local_fsc(sim.map, sim.map.copy(), 1.0, sim.mask, box=20)
    assert np.all(same.resolution[sim.mask] == pytest.approx(2.0))  # FSC = 1 up to Nyquist
    assert np.all(same.resolution[~sim.mask] == 0)
    assert any("independent" in w for w in same.warnings)
    a, b = (rng.standard_normal(sim.map.shape).astype(np.float32) for _ in (1, 2))
    noise = L.local_fsc(a, b, 1.0, sim.mask, box=20)
    # pure noise: FSC ≈ 0 from the first shell, the answer is the box size (20 Å)
    assert np.median(noise.resolution[sim.mask]) > 15.0
    assert any("box size" in w for w in noise.warnings)


@pytest.fixture(scope="module")
def chains_1r19(data_path):
    """1r19 (val split, 4 chains) at 1 Å/px with chains A/B/C/D at 3/5/7/9 Å, noise-free."""
    st = load_structure(data_path("structures/1r19.cif.gz"))
    names = [c.name for c in st[0]]
    return simulate(st, 1.0, dict(zip(names, [3.0, 5.0, 7.0, 9.0])), seed=1)


def chain_medians(sim, res):
    return [float(np.median(res[sim.truth == r])) for r in sim.group_resolutions]


def test_per_chain_medians_track_truth(chains_1r19):
    """Noise 0.25 × max per half, chains at 3 / 5 / 7 / 9 Å (box 22 Å, step 4): measured 3.09 Å
    for the 3 Å chain and 7.72 Å for the 9 Å one. The paper's filter passes everything up to 1/R
    and its raised-cosine edge reaches 1/R + 0.02 /px, so an SNR-based answer lies between
    1/(1/R + 0.02) and R (7.1–9 Å at 9 Å)."""
    sim = chains_1r19
    h1, h2 = halves(sim, 0.25)
    r = L.local_fsc(h1, h2, 1.0, sim.mask)
    assert 16 <= r.box <= 30 and r.step == round(r.box / 6)
    med = chain_medians(sim, r.resolution)
    assert np.all(np.diff(med) > 0.9)  # strictly ordered like the truth
    for m, res in zip(med, (3.0, 5.0, 7.0, 9.0)):
        assert 1 / (1 / res + 0.02) - 0.5 <= m <= res + 0.5, med
    assert np.all(r.resolution[~sim.mask] == 0) and np.all(r.resolution[sim.mask] > 0)


def test_high_snr_reads_better_than_truth(chains_1r19):
    """At the paper's noise 0.08 × max per half the SNR stays > 1 past each chain's cutoff
    (through the window), so local FSC reads better than the truth at low resolution.
    Measured: 2.70 / 4.08 / 5.49 / 6.40 Å for 3 / 5 / 7 / 9 Å (0.143: 2.42 / 3.49 / 4.33 /
    5.13 Å). Kept as a test so a change of this behaviour is seen."""
    sim = chains_1r19
    h1, h2 = halves(sim, 0.08)
    half = chain_medians(sim, L.local_fsc(h1, h2, 1.0, sim.mask).resolution)
    assert np.all(np.diff(half) > 0.5)
    assert half == pytest.approx([2.7, 4.1, 5.5, 6.4], abs=0.4)
    low = chain_medians(sim, L.local_fsc(h1, h2, 1.0, sim.mask, threshold=0.143).resolution)
    assert np.all(np.array(low) < np.array(half))


def test_sharpening_both_halves_leaves_local_fsc_put(st_5pti):
    """Paper Fig. S5 (local-FSC side): sharpening with B = −60 / −100 Å² does not change
    an SNR-based local resolution (here exactly, thanks to the prewhitening)."""
    sim = simulate(st_5pti, 1.0, 3.5, padding=16)
    h1, h2 = halves(sim, 0.08, seed=3)
    ref = L.local_fsc(h1, h2, 1.0, sim.mask)
    base = float(np.median(ref.resolution[sim.mask]))
    assert 3.0 < base < 3.8
    for b in (-60.0, -100.0):
        s1, s2 = (apply_bfactor(h, 1.0, b) for h in (h1, h2))
        r = L.local_fsc(s1, s2, 1.0, sim.mask, box=ref.box_angstrom)
        assert float(np.median(r.resolution[sim.mask])) == pytest.approx(base, abs=0.02)


def test_bad_inputs_are_refused():
    a = np.zeros((20, 20, 20), np.float32)
    m = np.ones_like(a, bool)
    with pytest.raises(InputError, match="differ in shape"):
        L.local_fsc(a, np.zeros((20, 20, 22), np.float32), 1.0, m)
    with pytest.raises(InputError, match="empty"):
        L.local_fsc(a, a, 1.0, np.zeros_like(m))
    with pytest.raises(InputError, match="threshold"):
        L.local_fsc(a, a, 1.0, m, box=10, threshold=1.5)
    with pytest.raises(InputError, match="larger than the map"):
        L.local_fsc(a, a, 1.0, m, box=40)


def test_cli_writes_map_json_on_input_grid(deepres, st_5pti, tmp_path):
    sim = simulate(st_5pti, 1.0, 4.0, padding=14)
    h1, h2 = halves(sim, 0.2, seed=5)
    grid = Volume(h1, 1.0, (12.5, -3.0, 40.0))
    paths = {k: str(tmp_path / f"{k}.mrc") for k in ("h1", "h2", "mask")}
    write_volume(paths["h1"], grid, h1)
    write_volume(paths["h2"], grid, h2)
    write_volume(paths["mask"], grid, sim.mask.astype(np.float32))
    out = tmp_path / "out" / "lfsc.mrc"
    r = deepres("localfsc", paths["h1"], paths["h2"], "--mask", paths["mask"], "-o", out,
                "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "local FSC (0.5)" in r.stdout and str(out) in r.stdout
    vol = read_volume(str(out))
    assert vol.shape == h1.shape and vol.sampling == 1.0 and vol.origin == (12.5, -3.0, 40.0)
    summary = json.loads((tmp_path / "out" / "lfsc.json").read_text())
    inside = vol.data[sim.mask]
    assert summary["stats"]["median"] == pytest.approx(float(np.median(inside)), rel=1e-5)
    assert summary["threshold"] == 0.5 and summary["box_voxels"] >= 16
    assert 3.0 < summary["stats"]["median"] < 5.0
    assert np.all(vol.data[~sim.mask] == 0)
    # without a mask: an automatic one, written beside the output
    r = deepres("localfsc", paths["h1"], paths["h2"], "-o", tmp_path / "auto.mrc",
                "--no-progress", "--box", "20", "--threshold", "0.143")
    assert r.returncode == 0, r.stderr
    assert read_volume(str(tmp_path / "auto_mask.mrc")).data.max() == 1.0
    assert json.loads((tmp_path / "auto.json").read_text())["box_A"] == 20.0


def test_cli_refuses_mismatched_halves(deepres, tmp_path):
    write_volume(str(tmp_path / "a.mrc"), Volume(np.zeros((20, 20, 20), np.float32), 1.0))
    write_volume(str(tmp_path / "b.mrc"), Volume(np.zeros((20, 20, 20), np.float32), 1.2))
    out = tmp_path / "o.mrc"
    r = deepres("localfsc", tmp_path / "a.mrc", tmp_path / "b.mrc", "-o", out)
    assert r.returncode == 2 and "voxel size" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


# --- map vs atomic model (no half maps) -------------------------------------------------------

@pytest.fixture(scope="module")
def st_1mol_val(data_path):
    """1mol (val split, 2 chains, 74³ at 1 Å/px)."""
    return load_structure(data_path("structures/1mol.cif.gz"))


@pytest.mark.parametrize("resolution", [4.0, 6.0])
def test_model_reference_reads_the_simulated_resolution(st_1mol_val, resolution):
    """A map simulated at R (the paper's raised cosine, noise 0.08 × max) against its own model
    (density to Nyquist, B = 0) at the map-vs-model threshold 0.5. The pass band reaches 1/R and
    the cosine edge 1/R + 0.02 /px, so a noise-free reference sees signal up to that edge:
    measured medians 3.66 Å at 4 Å and 5.39 Å at 6 Å (edge 3.70 / 5.36 Å). Sharpening the map
    (B = −60) does not move it (per-shell gain; prewhitened)."""
    from deepres_plugin.backend.filters import raised_cosine
    from deepres_plugin.backend.sharpening import model_reference

    sim = simulate(st_1mol_val, 1.0, resolution, noise=0.08, seed=1)
    vol = Volume(sim.map, 1.0, sim.origin)
    ref = model_reference(st_1mol_val, vol)
    r = L.local_fsc(sim.map, ref, 1.0, sim.mask, reference="model")
    med = float(np.median(r.resolution[sim.mask]))
    assert r.reference == "model" and r.threshold == L.MODEL_THRESHOLD == 0.5
    assert abs(med - resolution) <= 0.15 * resolution, med
    f = np.linspace(0, 0.5, 5001)  # where the paper's filter reaches 0 (cycles/px)
    edge = 1.0 / f[np.argmax(raised_cosine(f, 1.0, resolution) == 0)]
    assert edge - 0.25 <= med <= resolution + 0.25, (med, edge)
    assert np.all(r.resolution[~sim.mask] == 0)
    sharp = apply_bfactor(sim.map, 1.0, -60.0)
    r2 = L.local_fsc(sharp, ref, 1.0, sim.mask, box=r.box_angstrom, reference="model")
    assert float(np.median(r2.resolution[sim.mask])) == pytest.approx(med, abs=0.02)


def test_model_reference_ignores_atom_bfactors(st_5pti):
    """Every atom is simulated at B = 0, whatever the model's refined B-factors say."""
    from deepres_plugin.backend.sharpening import MODEL_B, model_reference

    sim = simulate(st_5pti, 1.0, 3.0, padding=10)
    vol = Volume(sim.map, 1.0, sim.origin)
    hot = st_5pti.clone()
    for res in hot[0][0]:
        for at in res:
            at.b_iso = 80.0
    assert MODEL_B == 0.0
    assert np.array_equal(model_reference(st_5pti, vol), model_reference(hot, vol))
    assert L.half_map_equivalent(0.5) == pytest.approx(0.143, abs=1e-3)


def test_cli_map_vs_model(deepres, st_5pti, data_path, tmp_path):
    """`deepres localfsc MAP --atoms MODEL`: reference 'model' in OUT.json, input grid kept;
    neither / both references, and a model that does not sit in the map, are refused."""
    sim = simulate(st_5pti, 1.0, 4.0, padding=12, noise=0.08, seed=2)
    grid = Volume(sim.map, 1.0, sim.origin)
    mpath = write_volume(str(tmp_path / "map.mrc"), grid)
    kpath = write_volume(str(tmp_path / "mask.mrc"), grid, sim.mask.astype(np.float32))
    atoms = data_path("structures/5pti.cif.gz")
    out = tmp_path / "lf.mrc"
    r = deepres("localfsc", mpath, "--atoms", atoms, "--mask", kpath, "-o", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "local FSC (0.5) of the map vs its model" in r.stdout
    summary = json.loads((tmp_path / "lf.json").read_text())
    assert summary["reference"] == "model" and summary["threshold"] == 0.5
    assert summary["half_map_equivalent_threshold"] == pytest.approx(0.143, abs=1e-3)
    assert summary["atomic_model"] == atoms and "half1" not in summary
    vol = read_volume(str(out))
    assert vol.origin == read_volume(mpath).origin and vol.shape == sim.map.shape
    assert 3.4 < summary["stats"]["median"] < 4.6
    bad = [((mpath, "-o", tmp_path / "a.mrc"), "not one map alone"),
           ((mpath, mpath, "--atoms", atoms, "-o", tmp_path / "b.mrc"), "not both"),
           ((mpath, "--atoms", data_path("structures/1mol.cif.gz"), "-o", tmp_path / "c.mrc"),
            "in the map's frame")]
    for args, msg in bad:
        r = deepres("localfsc", *args)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not any((tmp_path / n).exists() for n in ("a.mrc", "b.mrc", "c.mrc", "c.json"))
