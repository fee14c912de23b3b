"""Shared fixtures for the backend and CLI tests: the data kit (../shared/data, read in place,
never copied), the `deepres` executable of this interpreter's venv, small simulations."""
from __future__ import annotations

import os
import subprocess

import pytest

from kit_paths import DATA, DEEPRES


def data_file(rel: str) -> str:
    """Path of a file of the data kit; fails (not skips) when the kit is missing."""
    path = DATA / rel
    if not path.is_file():
        pytest.fail(f"data kit file missing: {path} (the repo expects ../shared/data)")
    return str(path)


@pytest.fixture(scope="session")
def data_path():
    """``data_path("maps/emd_5168.map.gz")`` → absolute path in the data kit."""
    return data_file


@pytest.fixture(scope="session")
def real_map() -> str:
    return data_file("maps/emd_5168.map.gz")


@pytest.fixture(scope="session")
def st_1mol():
    from deepres_plugin.backend.simulate import load_structure

    return load_structure(data_file("structures/1mol.cif.gz"))


@pytest.fixture(scope="session")
def st_5pti():
    from deepres_plugin.backend.simulate import load_structure

    return load_structure(data_file("structures/5pti.cif.gz"))


def run_deepres(*args, cwd=None, timeout=120):
    """Run the installed `deepres` console script; returns the CompletedProcess."""
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([str(DEEPRES), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture
def deepres():
    if not DEEPRES.is_file():
        pytest.fail(f"{DEEPRES} not found: install the package (make venv)")
    return run_deepres


def chimerax_surface(cxc: str) -> dict:
    """What a DeepRes ChimeraX script shows, recomputed here: the contour surface of its first
    map at the script's level (scikit-image marching cubes, as ChimeraX contours the grid), the
    resolution map sampled trilinearly at its vertices after the script's `volume threshold`,
    and which vertices get a resolution colour (value below the palette's grey stop). A vertex
    is outside the mask when the trilinear mask (resolution > 0) there is below 0.5."""
    import re

    import numpy as np
    from scipy import ndimage
    from skimage.measure import marching_cubes

    from deepres_plugin.backend.volume import read_volume

    text = open(cxc, encoding="utf-8").read()
    folder = os.path.dirname(os.path.abspath(cxc))
    names = re.findall(r'^open "(.+)"$', text, re.M)
    assert len(names) == 2 and not any(os.path.isabs(n) for n in names), names
    vol, res = (read_volume(os.path.join(folder, n)) for n in names)  # relative to the script
    level = float(re.search(r" style surface level (\S+)", text).group(1))
    low, fill = map(float, re.search(r"volume threshold #2 minimum (\S+) set (\S+)", text).groups())
    palette = re.search(r"^color sample #1 map #3 palette (\S+)$", text, re.M).group(1)
    stops = [(float(v), c) for v, c in (p.split(",") for p in palette.split(":"))]
    grey_from = stops[-1][0]
    verts = marching_cubes(vol.data, level)[0].T  # (z, y, x) voxel coordinates
    shown = np.where(res.data < low, fill, res.data)
    sampled = ndimage.map_coordinates(shown, verts, order=1)
    inside = ndimage.map_coordinates((res.data > 0).astype(np.float32), verts, order=1) >= 0.5
    coloured = sampled < grey_from
    return {"level": level, "vertices": verts.shape[1], "coloured": int(coloured.sum()),
            "coloured_outside": int((coloured & ~inside).sum()),
            "naive_zero": float(np.mean(ndimage.map_coordinates(res.data, verts, order=1) < 1e-3)),
            "stops": stops, "text": text}


@pytest.fixture(scope="session")
def surface_of():
    return chimerax_surface
