"""Helpers for Scipion tests (these and the repository's pytest suite): test data made in code
(no Scipion DataSet download), imports through pwem's own import protocols, small MRC readers.

Nothing here imports pyworkflow/pwem at module level."""
import os

import numpy as np

# 4-helix bundle (deepres demo): chain A at 3 Å, B 4.5 Å, C 6 Å, D 8 Å
BUNDLE_RESOLUTIONS = {"A": 3.0, "B": 4.5, "C": 6.0, "D": 8.0}


def shipped_weights(name: str = "standard") -> bool:
    """True when the shipped model ``name`` (weights + card) is present."""
    from deepres_plugin.constants import WEIGHTS_DIR

    return all(os.path.isfile(os.path.join(WEIGHTS_DIR, name + ext))
               for ext in (".weights.h5", ".json"))


def bundle_model(out_dir: str, residues: int = 14) -> str:
    """Write the ideal poly-Ala 4-helix bundle (chains A–D) as mmCIF; returns its path."""
    from deepres_plugin.cli.demo import helix_bundle

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "bundle.cif")
    helix_bundle(residues).make_mmcif_document().write_file(path)
    return path


def bundle_map(out_dir: str, resolutions=None, residues: int = 14, sampling=1.0, noise=0.05,
               seed=0, origin=None):
    """Simulate the bundle (``resolutions``: Å, or chain → Å; default the demo's per-chain
    values); write map.mrc + mask.mrc + truth.mrc. Returns (map, mask, truth) paths.
    ``origin`` (x, y, z Å) overrides the header origin."""
    from deepres_plugin.backend.simulate import load_structure, simulate
    from deepres_plugin.backend.volume import Volume, write_volume

    res = BUNDLE_RESOLUTIONS if resolutions is None else resolutions
    sim = simulate(load_structure(bundle_model(out_dir, residues)), sampling, res, noise=noise,
                   seed=seed)
    grid = Volume(sim.map, sampling, tuple(origin) if origin is not None else sim.origin)
    return tuple(write_volume(os.path.join(out_dir, f"bundle_{kind}.mrc"), grid, data)
                 for kind, data in (("map", None), ("mask", sim.mask.astype(np.float32)),
                                    ("truth", sim.truth)))


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
