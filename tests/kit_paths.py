"""Paths shared by the test modules (imported by name: `conftest` is ambiguous when pytest
collects tests/ and tests/scipion/ together)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEEPRES = Path(sys.executable).parent / "deepres"
