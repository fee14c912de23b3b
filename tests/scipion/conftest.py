"""Scipion tests change the working directory to their project (as pyworkflow expects):
restore it after each module so the other test folders see the directory they started in."""
import os

import pytest


@pytest.fixture(autouse=True, scope="module")
def _restore_cwd():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)
