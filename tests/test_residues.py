"""Per-residue local resolution (`deepres estimate --atoms`): voxel assignment and statistics,
the model's frame (origin/nstart), refusal of models that do not sit in the map, the four
outputs, and real numbers on EMD-3488 with its deposited model."""
import csv
import os
import re

import numpy as np
import pytest

from deepres_plugin.backend import residues as R
from deepres_plugin.backend.report import grid_origin
from deepres_plugin.backend.volume import read_volume


def shifted_model(src, dst, shift):
    """Write a copy of a model moved by ``shift`` (x, y, z Å)."""
    import gemmi

    st = gemmi.read_structure(src)
    for cra in st[0].all():
        cra.atom.pos = gemmi.Position(*(np.array(cra.atom.pos.tolist()) + shift))
    st.write_pdb(str(dst))
    return str(dst)


def test_group_quantiles_match_numpy():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 6, 500)
    label[label == 4] = 5  # group 4 stays empty
    values = rng.normal(5, 2, 500)
    med, q25, q75 = R.group_quantiles(values, label, 7, (0.5, 0.25, 0.75))
    for g in range(7):
        v = values[label == g]
        if v.size == 0:
            assert np.isnan(med[g]) and np.isnan(q25[g]) and np.isnan(q75[g])
        else:
            np.testing.assert_allclose([med[g], q25[g], q75[g]], np.percentile(v, [50, 25, 75]))


def test_nstart_frame_and_unmeasured_residues(tmp_path, data_path):
    """EMD-5168 has nstart -50 (voxel 0 at -87.1 Å): a resolution field that grows along x
    must read, per residue, the field at the residue's atoms."""
    vol = read_volume(data_path("maps/emd_5168.map.gz"))
    res = R.load(data_path("maps/emd_5168_fit_3mfp.cif.gz"), vol)
    assert len(res.chain) == 369
    x = grid_origin(vol)[0] + np.arange(vol.shape[2]) * vol.sampling
    field = np.broadcast_to(5 + 0.05 * x, vol.shape).astype(np.float32)
    warnings = R.measure(res, field, np.ones(vol.shape, bool), vol)
    # residue 45 lies beyond the box (z < -87.1 Å): no voxel, marked
    assert [res.number[i] for i in np.nonzero(res.voxels == 0)[0]] == ["45"]
    assert "1 of 369 residues" in warnings[0]
    at_atoms = 5 + 0.05 * np.array([np.median(res.xyz[res.owner == i, 0])
                                    for i in range(len(res.chain))])
    err = np.abs(res.median - at_atoms)[res.voxels > 0]
    assert err.max() < 0.15 and err.mean() < 0.05, (err.max(), err.mean())  # ≤ 3 Å, ~0.6 Å
    assert 10 <= res.voxels[res.voxels > 0].min() and res.voxels.max() < 80

    half = np.broadcast_to(x < -10, vol.shape)  # a mask covering the residues with x < -10 Å
    R.measure(res, field, half, vol)
    gone = res.voxels == 0
    assert 100 < gone.sum() < 200
    assert np.all(np.nanmax(field[half]) >= res.median[~gone])
    files = R.write(res, str(tmp_path / "loc.mrc"), field[half], None)
    assert [os.path.basename(f) for f in files] == [
        "loc_residues.cif", "loc_residues.csv", "loc_residues.png", "loc_residues.cxc"]
    rows = list(csv.DictReader(open(files[1])))
    assert sum(r["median"] == "" and r["voxels"] == "0" for r in rows) == gone.sum()
    import gemmi

    st = gemmi.read_structure(files[0])
    b = {(r.name, r.seqid.num): r[0].b_iso for r in st[0]["A"]}
    assert b[("VAL", 45)] == R.NO_VALUE_B
    assert abs(b[("GLU", 4)] - float(rows[0]["median"])) < 0.006
    block = gemmi.cif.read(files[0]).sole_block()
    table = block.find(R.CIF_CATEGORY, ["auth_seq_id", "median_resolution", "voxel_count"])
    assert len(table) == 369
    marked = [row for row in table if row[2] == "0"]
    assert len(marked) == gone.sum() and all(row[1] == "?" for row in marked)


@pytest.mark.parametrize("shift,message", [
    ((80.0, 0.0, 0.0), "% of its atoms lie inside the map's box"),
    ((8.0, 0.0, 0.0), "% of its atoms inside the box sit in density"),
])
def test_misplaced_model_refused_before_the_network(deepres, tmp_path, data_path, shift,
                                                    message):
    model = shifted_model(data_path("maps/emd_3488_fit_5me2.pdb.gz"), tmp_path / "m.pdb",
                          shift)
    r = deepres("estimate", data_path("maps/emd_3488.mrc.gz"), "-o", tmp_path / "o" / "l.mrc",
                "--atoms", model)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("deepres: error: atomic model ")
    assert message in r.stderr and "in the map's frame" in r.stderr
    assert not (tmp_path / "o").exists()


def test_unreadable_model_is_one_line(deepres, tmp_path, data_path):
    bad = tmp_path / "notes.cif"
    bad.write_text("not a structure\n")
    for path, message in ((bad, "cannot read atomic model"),
                          (tmp_path / "none.pdb", "atomic model file not found")):
        r = deepres("estimate", data_path("maps/emd_3488.mrc.gz"), "-o", tmp_path / "l.mrc",
                    "--atoms", path)
        assert r.returncode == 2 and r.stderr.startswith("deepres: error: ") and \
            r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_bundle_chains_and_all_or_nothing(deepres, tmp_path):
    """The demo's 4-helix bundle (chains at 3, 4.5, 6, 8 Å): each chain's residues read what
    the resolution map reads over that chain's voxels; a residue file that cannot be written
    takes the whole set with it."""
    from deepres_plugin.tests.helpers import bundle_map

    mpath, kpath, tpath = bundle_map(str(tmp_path))
    model = str(tmp_path / "bundle.cif")
    long = tmp_path / "x" / ("n" * 246 + ".mrc")  # OUT_residues.png: 259 bytes, too long
    r = deepres("estimate", mpath, "--mask", kpath, "-o", long, "--atoms", model, "--model",
                "standard", "--no-progress")
    assert r.returncode == 2 and "File name too long" in r.stderr, r.stderr
    assert os.listdir(long.parent) == []  # no map, JSON or residue file kept
    out = tmp_path / "o" / "loc.mrc"
    r = deepres("estimate", mpath, "--mask", kpath, "-o", out, "--atoms", model, "--model",
                "standard", "--no-progress", "--chimerax", tmp_path / "o" / "loc.cxc")
    assert r.returncode == 0, r.stderr
    for suffix in (".cif", ".csv", ".png", ".cxc"):
        assert f"loc_residues{suffix}" in r.stdout
    rows = list(csv.DictReader(open(tmp_path / "o" / "loc_residues.csv")))
    assert len(rows) == 56 and all(int(row["voxels"]) > 0 for row in rows)
    res = read_volume(str(out)).data
    truth = read_volume(tpath).data
    per_chain = []
    for chain, t in zip("ABCD", (3.0, 4.5, 6.0, 8.0)):
        med = np.median([float(row["median"]) for row in rows if row["chain"] == chain])
        per_chain.append(med)
        assert abs(med - np.median(res[truth == t])) < 0.25, (chain, med)
    assert np.all(np.diff(per_chain) > 0.5), per_chain
    map_cxc = open(tmp_path / "o" / "loc.cxc").read()
    res_cxc = open(tmp_path / "o" / "loc_residues.cxc").read()
    palette = re.search(r"color sample #1 map #3 palette (\S+)", map_cxc).group(1)
    assert f"color byattribute bfactor #1 palette {palette}\n" in res_cxc
    assert re.search(r"^key .*$", map_cxc, re.M).group(0) in res_cxc
    assert 'open "loc_residues.cif"' in res_cxc


def test_emd_3488_per_residue(tmp_path, data_path):
    """EMD-3488 (haemoglobin, 3.2 Å) with its deposited model 5ME2, shipped standard model."""
    import gemmi

    from deepres_plugin.backend.estimate import run

    out = tmp_path / "loc.mrc"
    model = data_path("maps/emd_3488_fit_5me2.pdb.gz")
    result = run(data_path("maps/emd_3488.mrc.gz"), str(out), model="standard", atoms=model)
    assert [os.path.basename(f) for f in result.files[-4:]] == [
        "loc_residues.pdb", "loc_residues.csv", "loc_residues.png", "loc_residues.cxc"]
    rows = list(csv.DictReader(open(tmp_path / "loc_residues.csv")))
    assert len(rows) == 570  # 4 chains of 141/144 residues + 4 haem groups
    med = np.array([float(r["median"]) for r in rows])
    q25, q75 = (np.array([float(r[k]) for r in rows]) for k in ("q25", "q75"))
    inside = result.resolution[result.mask]
    assert np.all(np.isfinite(med))  # every residue has mask voxels
    assert inside.min() <= med.min() and med.max() <= inside.max()
    assert np.all((q25 <= med) & (med <= q75))
    assert 2.5 <= np.median(med) <= result.stats["p75"], np.median(med)
    haem = [float(r["median"]) for r in rows if r["name"] == "HEM"]
    assert len(haem) == 4 and max(haem) < result.stats["p95"]
    voxels = np.array([int(r["voxels"]) for r in rows])
    assert 20 <= voxels.min() and voxels.sum() <= inside.size
    # the B-factor column holds the CSV's medians
    st = gemmi.read_structure(str(tmp_path / "loc_residues.pdb"))
    bs = [r[0].b_iso for ch in st[0] for r in ch]
    np.testing.assert_allclose(bs, med, atol=0.006)
    # residue 50 of chain A, recomputed by brute force: mask voxels whose nearest atom is in it
    src = read_volume(data_path("maps/emd_3488.mrc.gz"))
    atoms = np.array([cra.atom.pos.tolist() for cra in gemmi.read_structure(model)[0].all()])
    mine = np.array([a.pos.tolist() for a in gemmi.read_structure(model)[0]["A"]["50"][0]])
    zyx = np.argwhere(result.mask)
    xyz = np.asarray(grid_origin(src)) + zyx[:, ::-1] * src.sampling
    close = np.all(np.abs(xyz - mine.mean(0)) < 12, axis=1)
    d_all = np.linalg.norm(xyz[close, None] - atoms[None], axis=2).min(1)
    d_mine = np.linalg.norm(xyz[close, None] - mine[None], axis=2).min(1)
    own = (d_mine <= R.RADIUS) & (d_mine == d_all)
    row = next(r for r in rows if r["chain"] == "A" and r["number"] == "50")
    assert int(row["voxels"]) == own.sum()
    assert float(row["median"]) == pytest.approx(
        np.median(result.resolution[tuple(zyx[close][own].T)]), abs=1e-3)
