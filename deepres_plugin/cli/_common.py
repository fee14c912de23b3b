"""Helpers shared by the CLI commands: output path checks, TensorFlow start-up with --device
and --threads. (All-or-nothing output sets: :class:`deepres_plugin.backend.volume.OutputSet`.)"""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
from contextlib import contextmanager


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


def add_compute_args(parser) -> None:
    """``--threads`` and ``--device``, for the commands that run the network."""
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads TensorFlow may use (0 = all)")
    parser.add_argument("--device", default="auto", metavar="cpu|gpu[:N]",
                        help="where the network runs: auto (a visible GPU, else the CPU), cpu, "
                             "gpu (the first GPU) or gpu:N (the N-th visible GPU, from 0)")


def parse_device(text: str) -> tuple[str, int]:
    """``auto``/``cpu``/``gpu``/``gpu:N`` → (kind, index); InputError otherwise."""
    from ..backend.volume import InputError

    kind, _, index = text.lower().partition(":")
    if kind in ("auto", "cpu") and not index:
        return kind, 0
    if kind == "gpu" and (not index or index.isdigit()):
        return kind, int(index or 0)
    raise InputError(f"--device {text!r}: use auto, cpu, gpu or gpu:N (N = 0, 1, ...)")


def check_compute_args(args) -> tuple[str, int, int]:
    """(device kind, device index, threads) from ``--device``/``--threads``; InputError if bad."""
    from ..backend.volume import InputError

    kind, index = parse_device(getattr(args, "device", "auto"))
    threads = getattr(args, "threads", 0)
    if threads < 0:
        raise InputError(f"--threads must be ≥ 0 (got {threads})")
    return kind, index, threads


def start_tensorflow(args) -> None:
    """Import TensorFlow with ``--device`` and ``--threads`` applied (before its first use).
    Its C++ start-up lines go to stderr only with -v (they are written before any log level
    applies, so stderr is closed to them while TensorFlow loads)."""
    from ..backend.volume import InputError

    kind, index, threads = check_compute_args(args)
    if kind == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # TensorFlow never touches a GPU
    with native_stderr_muted(not getattr(args, "verbose", 0)):
        from ..backend import models

        models._keras()
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if kind == "gpu":
        if index >= len(gpus):
            raise InputError(f"--device {args.device}: TensorFlow sees {len(gpus)} GPU(s) "
                             "(it needs its CUDA build: pip install 'tensorflow[and-cuda]', and "
                             "a driver); use --device cpu")
        tf.config.set_visible_devices(gpus[index], "GPU")
    if threads:
        models.set_threads(threads)


@contextmanager
def native_stderr_muted(on: bool = True):
    """Send what C/C++ code writes to file descriptor 2 to /dev/null inside the block."""
    if not on:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
