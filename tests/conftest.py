"""Shared fixtures for the backend and CLI tests: the data kit (../shared/data, read in place,
never copied), the `deepres` executable of this interpreter's venv, small simulations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEEPRES = Path(sys.executable).parent / "deepres"


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
