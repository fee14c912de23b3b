"""Shared helpers for the Scipion tests: test data made in code from ../shared/data (no Scipion
DataSet downloads), imports through pwem's own import protocols, and small MRC readers."""
import csv
import os
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WEIGHTS = Path(__file__).resolve().parents[2] / "deepres_plugin" / "backend" / "weights"


def shipped_weights() -> bool:
    """True when the shipped standard model (weights + card) is present."""
    return (WEIGHTS / "standard.weights.h5").is_file() and (WEIGHTS / "standard.json").is_file()


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


def import_volume(test, path, sampling, origin=None):
    """Run pwem's ProtImportVolumes on one file; ``origin`` (x, y, z Å) sets the origin."""
    from pwem.protocols import ProtImportVolumes

    kw = dict(filesPath=path, samplingRate=sampling)
    if origin is not None:  # pwem stores shifts = -(x, y, z) typed in the form
        kw.update(setOrigCoord=True, x=-origin[0], y=-origin[1], z=-origin[2])
    prot = test.newProtocol(ProtImportVolumes, **kw)
    test.launchProtocol(prot)
    return prot.outputVolume


def import_mask(test, path, sampling):
    from pwem.protocols import ProtImportMask

    prot = test.newProtocol(ProtImportMask, maskPath=path, samplingRate=sampling)
    test.launchProtocol(prot)
    return prot.outputMask


def import_structure(test, path):
    from pwem.protocols import ProtImportPdb

    prot = test.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                            pdbFile=path)
    test.launchProtocol(prot)
    return prot.outputPdb


def read_mrc(path):
    """(data z,y,x float32, voxel size, origin x,y,z) of an MRC file."""
    import mrcfile

    with mrcfile.open(path.replace(":mrc", ""), permissive=True) as mrc:
        h = mrc.header
        return (np.asarray(mrc.data, np.float32).copy(), float(mrc.voxel_size.x),
                (float(h.origin.x), float(h.origin.y), float(h.origin.z)))


def shifts(obj):
    """Origin shifts (x, y, z Å) of a Scipion volume, as floats."""
    return tuple(float(v) for v in obj.getOrigin(force=True).getShifts())
