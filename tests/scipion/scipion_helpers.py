"""Shared helpers for the Scipion tests: test data made in code from ../shared/data (no Scipion
DataSet downloads). The pwem import helpers and MRC readers live in deepres_plugin/tests/helpers.py
(the plugin's own Scipion tests use them too) and are re-exported here."""
import csv
import os
from pathlib import Path

import numpy as np

# generic helpers shared with the plugin's own Scipion tests (`scipion3 tests deepres_plugin…`)
from deepres_plugin.tests.helpers import (  # noqa: F401
    import_mask, import_structure, import_volume, read_mrc, shifts)
from deepres_plugin.tests.helpers import shipped_weights as _shipped

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shipped_weights() -> bool:
    """True when the shipped standard model (weights + card) is present."""
    return _shipped("standard")


def structure(pdb_id: str) -> str:
    """Path of a structure of the data kit, checking it is in the `val` split."""
    with open(DATA / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows[pdb_id]["split"] == "val", f"{pdb_id} is not a val structure"
    return str(DATA / rows[pdb_id]["file"])


def simulate_map(pdb_id: str, out_dir: str, resolution=5.0, sampling=1.0, noise=0.08,
                 seed=0, origin=None):
    """Simulate a map of a val structure with the backend; write map.mrc + mask.mrc.

    Returns (map path, mask path, Simulation). ``origin`` overrides the header origin (Å)."""
    from deepres_plugin.backend.simulate import load_structure, simulate
    from deepres_plugin.backend.volume import Volume, write_volume

    sim = simulate(load_structure(structure(pdb_id)), sampling, resolution, noise=noise,
                   seed=seed)
    grid = Volume(sim.map, sampling, tuple(origin) if origin is not None else sim.origin)
    os.makedirs(out_dir, exist_ok=True)
    mpath = write_volume(os.path.join(out_dir, f"{pdb_id}_map.mrc"), grid)
    kpath = write_volume(os.path.join(out_dir, f"{pdb_id}_mask.mrc"), grid,
                         sim.mask.astype(np.float32))
    return mpath, kpath, sim
