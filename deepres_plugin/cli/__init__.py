"""`deepres` command line: one module per command (docstring = help, ``add_args(parser)``,
``main(args)``). Command modules import numpy/scipy/TensorFlow only inside ``main`` so that
``deepres --help`` answers at once.

Errors: :class:`InputError` (bad input) and ``OSError`` (unreadable/unwritable files) print one
line ``deepres: error: <message>`` on stderr and exit with code 2 (``--debug``: traceback too).
SIGINT and SIGTERM raise KeyboardInterrupt, so half-written outputs are removed; the command
then says ``interrupted`` and exits with 130 (SIGINT) or 143 (SIGTERM)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

#: commands in the order ``deepres --help`` lists them (module names in this package)
COMMANDS = ["estimate", "summary", "train", "calibrate", "info", "simulate", "demo", "localfsc",
            "sharpening"]

EXIT_ERROR = 2


def _global_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the full traceback on errors")
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more log messages (-v info, -vv debug)")


def _summary(doc: str) -> str:
    """First sentence of a docstring's first paragraph (the one-line help of a command)."""
    para = " ".join(doc.split("\n\n")[0].split())
    return para.split(". ")[0].rstrip(".")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per module in :data:`COMMANDS`."""

    parser = argparse.ArgumentParser(
        prog="deepres", description="DeepRes local resolution of cryo-EM maps (3-D CNN).",
        epilog="Run `deepres COMMAND --help` for the options of a command.")
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        doc = (module.__doc__ or name).strip()
        p = sub.add_parser(name, help=_summary(doc), description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        # accept the global options after the command too, without overriding earlier ones
        _global_options(p, argparse.SUPPRESS)
        p.set_defaults(_main=module.main)
    return parser


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"deepres: error: {message}", file=sys.stderr)
    return code


_SIGNALS: list = []  # signals received, in order


def _on_signal(signum, frame):
    _SIGNALS.append(signum)
    raise KeyboardInterrupt


class _Formatter(logging.Formatter):
    """``warning: message`` (one line per record); with -vv the logger name too."""

    def __init__(self, names: bool):
        super().__init__()
        self.names = names

    def format(self, record):
        head = record.levelname.lower() + (f" {record.name}" if self.names else "")
        return f"{head}: {record.getMessage()}"


def _quiet_libraries(verbose: int) -> None:
    """TensorFlow's C++ and absl lines only with -v (set before TensorFlow is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if not verbose:
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass


def main(argv=None) -> int:
    """Entry point of the ``deepres`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    verbose = args.verbose or 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(verbose >= 2))
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler])
    _quiet_libraries(verbose)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    try:
        from ..backend.volume import InputError

        try:
            return int(args._main(args) or 0)
        except (InputError, OSError) as exc:
            if _SIGNALS:  # a library turned the interruption into an error of its own
                raise KeyboardInterrupt from exc
            if args.debug:
                import traceback

                traceback.print_exc()
            if isinstance(exc, OSError):
                where = f": {exc.filename}" if exc.filename else ""
                return _fail(f"{exc.strerror or exc}{where}")
            return _fail(" ".join(str(exc).split()))
        except Exception:
            if _SIGNALS:
                raise KeyboardInterrupt from None
            raise
    except KeyboardInterrupt:
        signum = _SIGNALS[0] if _SIGNALS else signal.SIGINT
        return _fail(f"interrupted ({signal.Signals(signum).name}); no partial output was "
                     "kept", 128 + int(signum))
