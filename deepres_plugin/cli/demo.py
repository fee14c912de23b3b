"""Simulate a demo map (no network, no data files): a 4-helix bundle, one resolution per chain.

The bundle is built in code (ideal poly-Ala α-helices) and simulated at 1 Å/px with noise
0.05 × max, chain A at 3 Å, B 4.5 Å, C 6 Å and D 8 Å.

Writes into `--out` (default demo_output/): demo_model.cif (the bundle), demo_map.mrc,
demo_mask.mrc (voxels within 3 Å of an atom) and demo_truth.mrc (true resolution per voxel,
Å), then estimates the local resolution with the shipped `standard` model (demo_locres.mrc,
.json, histogram, slices, ChimeraX script) and prints per-chain medians next to the truth."""
from __future__ import annotations

import math
import os
import time

CHAIN_RESOLUTIONS = {"A": 3.0, "B": 4.5, "C": 6.0, "D": 8.0}
# ideal backbone geometry (Engh & Huber) and α-helix torsions, degrees / Å
BOND = {"N-CA": 1.458, "CA-C": 1.525, "C-N": 1.329, "C-O": 1.231, "CA-CB": 1.530}
ANGLE = {"N-CA-C": 111.2, "CA-C-N": 116.2, "C-N-CA": 121.7, "CA-C-O": 120.5,
         "N-CA-CB": 110.5}
PHI, PSI, OMEGA = -57.8, -47.0, 180.0


def add_args(parser):
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--residues", type=int, default=28, help="residues per helix")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="noise SD as a fraction of the map maximum")
    parser.add_argument("--seed", type=int, default=0, help="noise random seed")
    parser.add_argument("--no-estimate", action="store_true",
                        help="only simulate (skip the DeepRes estimate)")


def _place(a, b, c, bond, angle, torsion):
    """Natural-extension reference frame: atom d from a, b, c, |cd|, ∠bcd, dihedral abcd."""
    import numpy as np

    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    ang, tor = math.radians(angle), math.radians(torsion)
    return c + bond * (-math.cos(ang) * bc + math.sin(ang) * math.cos(tor) * m
                       + math.sin(ang) * math.sin(tor) * n)


def ideal_helix(n_res: int):
    """Backbone + CB coordinates (n_res, 5, 3) of an ideal poly-Ala α-helix along z."""
    import numpy as np

    n = np.array([0.0, 0.0, 0.0])
    ca = np.array([BOND["N-CA"], 0.0, 0.0])
    t = math.radians(180 - ANGLE["N-CA-C"])
    c = ca + BOND["CA-C"] * np.array([math.cos(t), math.sin(t), 0.0])
    res = []
    for i in range(n_res):
        n_next = _place(n, ca, c, BOND["C-N"], ANGLE["CA-C-N"], PSI)
        o = _place(n, ca, c, BOND["C-O"], ANGLE["CA-C-O"], PSI + 180.0)
        cb = _place(c, n, ca, BOND["CA-CB"], ANGLE["N-CA-CB"], -122.6)
        res.append([n, ca, c, o, cb])
        ca_next = _place(ca, c, n_next, BOND["N-CA"], ANGLE["C-N-CA"], OMEGA)
        c_next = _place(c, n_next, ca_next, BOND["CA-C"], ANGLE["N-CA-C"], PHI)
        n, ca, c = n_next, ca_next, c_next
    xyz = np.asarray(res)
    # put the helix axis on z: principal axis of the CA atoms, centred at 0
    cas = xyz[:, 1] - xyz[:, 1].mean(0)
    axis = np.linalg.svd(cas, full_matrices=False)[2][0]
    axis *= np.sign(axis @ (cas[-1] - cas[0]))
    z = np.array([0.0, 0.0, 1.0])
    v, cth = np.cross(axis, z), float(axis @ z)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    rot = np.eye(3) + vx + vx @ vx / (1.0 + cth)  # Rodrigues: axis → z
    return (xyz - xyz[:, 1].mean(0)) @ rot.T


def helix_bundle(n_res: int = 28, spacing: float = 10.0):
    """A gemmi Structure: 4 antiparallel ideal poly-Ala helices (chains A–D) on a square."""
    import gemmi
    import numpy as np

    helix = ideal_helix(n_res)
    st = gemmi.Structure()
    st.name = "demo_bundle"
    st.cell = gemmi.UnitCell(1, 1, 1, 90, 90, 90)
    model = gemmi.Model("1")
    half = spacing / 2.0
    corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
    for k, (name, (x, y)) in enumerate(zip(CHAIN_RESOLUTIONS, corners)):
        xyz = helix.copy()
        if k % 2:  # antiparallel neighbours: turn the helix upside down (180° about x)
            xyz = xyz * np.array([1.0, -1.0, -1.0])
        xyz = xyz + np.array([x, y, 0.0])
        chain = gemmi.Chain(name)
        for i in range(n_res):
            r = gemmi.Residue()
            r.name, r.seqid, r.entity_type = "ALA", gemmi.SeqId(i + 1, " "), \
                gemmi.EntityType.Polymer
            for (atom_name, element), pos in zip(
                    (("N", "N"), ("CA", "C"), ("C", "C"), ("O", "O"), ("CB", "C")), xyz[i]):
                a = gemmi.Atom()
                a.name, a.element, a.pos = atom_name, gemmi.Element(element), \
                    gemmi.Position(*pos)
                a.occ, a.b_iso = 1.0, 10.0
                r.add_atom(a)
            chain.add_residue(r)
        model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


def main(args):
    import numpy as np

    from ..backend.simulate import simulate
    from ..backend.volume import InputError, OutputSet, Volume, atomic_write_text, write_volume

    if args.residues < 7:
        raise InputError("--residues must be ≥ 7 (two helical turns)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out {args.out} exists and is not a folder")
    t0 = time.perf_counter()
    st = helix_bundle(args.residues)
    t_build = time.perf_counter() - t0
    sim = simulate(st, 1.0, CHAIN_RESOLUTIONS, noise=args.noise, seed=args.seed)
    t_sim = time.perf_counter() - t0 - t_build
    grid = Volume(sim.map, 1.0, sim.origin)
    paths = {k: os.path.join(args.out, f"demo_{k}.{'cif' if k == 'model' else 'mrc'}")
             for k in ("model", "map", "mask", "truth")}
    nz, ny, nx = sim.map.shape
    print(f"4-helix bundle: {4 * args.residues} residues, {nx} x {ny} x {nz} voxels at 1 Å/px, "
          f"noise {args.noise:g} × max")
    for name, res in CHAIN_RESOLUTIONS.items():
        print(f"  chain {name}: {res:g} Å")
    with OutputSet() as written:  # simulation and estimate: all files or none
        atomic_write_text(paths["model"], st.make_mmcif_document().as_string())
        write_volume(paths["map"], grid)
        write_volume(paths["mask"], grid, sim.mask.astype(np.float32))
        write_volume(paths["truth"], grid, sim.truth)
        t_write = time.perf_counter() - t0 - t_build - t_sim
        print(f"timings: build {t_build:.2f} s, simulate {t_sim:.2f} s, write {t_write:.2f} s")
        if not args.no_estimate:
            _estimate(args, paths, grid, sim)
    for path in written.paths:
        print(f"wrote {path}")
    return 0


def _estimate(args, paths, grid, sim):
    """Estimate the demo map and compare per-chain medians with the true resolutions."""
    import numpy as np

    from ..backend.estimate import estimate, write_outputs
    from ..backend.progress import bars, shown
    from ._common import start_tensorflow

    base = os.path.join(args.out, "demo_locres")
    with shown(True):
        res = estimate(grid, sim.mask, "standard", bars(), ready=lambda: start_tensorflow(args))
        write_outputs(res, grid, paths["map"], base + ".mrc", paths["mask"],
                      histogram=base + "_histogram.png", slices=base + "_slices.png",
                      chimerax=base + ".cxc")
    print(f"DeepRes ({res.model} model): median {res.stats['median']:.2f} Å in "
          f"{res.timings['total_s']:.1f} s")
    print("  chain  true   DeepRes median (SD)")
    for name, true in CHAIN_RESOLUTIONS.items():
        v = res.resolution[(sim.truth == true) & sim.mask]
        print(f"  {name:5s} {true:5.1f}   {np.median(v):5.2f} ({np.std(v):.2f}) Å")
