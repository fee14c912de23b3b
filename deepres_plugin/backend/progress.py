"""Progress messages on stderr while a command runs: plain lines (one per step, no carriage
returns, fit for logs and pipes); tqdm bars for tiles only when stderr is a terminal. Off unless
a caller turns them on with :func:`shown` (the CLI does, unless --no-progress)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

_STATE = {"on": False}


@contextmanager
def shown(on: bool = True):
    """Show progress messages inside this block when ``on``."""
    before = _STATE["on"]
    _STATE["on"] = bool(on)
    try:
        yield
    finally:
        _STATE["on"] = before


def bars() -> bool:
    """Whether tqdm bars are wanted: progress on and stderr a terminal."""
    return _STATE["on"] and sys.stderr.isatty()


def say(text: str) -> None:
    """One progress line on stderr (when progress is on)."""
    if _STATE["on"]:
        print(text, file=sys.stderr, flush=True)
