"""Helpers shared by the CLI commands: output path checks and all-or-nothing output sets."""
from __future__ import annotations

import os
import shlex
import sys
import tempfile


def check_output(path: str, suffixes=(".mrc",), inputs=()) -> str:
    """Refuse an output path that cannot be written, has the wrong suffix or is an input."""
    from ..backend.volume import InputError

    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise InputError(f"output {path} must end with {' or '.join(suffixes)}")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise InputError(f"output {path} is a folder; give a file name")
    if os.path.exists(full) and any(os.path.exists(i) and os.path.samefile(i, full)
                                    for i in inputs):
        raise InputError(f"output {path} would overwrite an input file")
    parent = os.path.dirname(full)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    try:  # probe: os.access() says yes to root on read-only or virtual file systems
        if not os.path.isdir(parent):
            raise OSError
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        raise InputError(f"cannot write {path}: {parent} is not a writable folder") from None
    return path


def command_line(verb: str, drop=("--resume",)) -> str:
    """``deepres VERB …`` as typed (options in ``drop`` left out), for model cards."""
    argv = sys.argv[sys.argv.index(verb) + 1:] if verb in sys.argv else sys.argv[1:]
    return f"deepres {verb} " + shlex.join(a for a in argv if a not in drop)


def stem(path: str) -> str:
    """``OUT.mrc`` → ``OUT`` (the base for ``OUT_truth.mrc``, ``OUT.json`` ...)."""
    root, ext = os.path.splitext(path)
    return root if ext else path


class OutputSet:
    """Context manager that records written files and deletes them if the command fails,
    so a failed run leaves no partial result set behind."""

    def __init__(self):
        self.paths: list[str] = []

    def __enter__(self):
        return self

    def add(self, path: str) -> str:
        self.paths.append(path)
        return path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for p in self.paths:
                if os.path.isfile(p):
                    os.remove(p)
        return False
