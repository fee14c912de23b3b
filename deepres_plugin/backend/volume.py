"""MRC map I/O with mrcfile: validation with one-line messages, exact header keeping, atomic writes."""
from __future__ import annotations

import contextvars
import os
import signal
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .config import InputError  # noqa: F401  (defined in the light parameter layer)


@dataclass
class Volume:
    """A 3-D map: data indexed [z, y, x] (MRC order), isotropic voxel size in Å/px.

    ``origin`` (Å, x/y/z) and ``nstart`` (voxels, x/y/z) are kept exactly as read so outputs
    land on the same grid as the input in any viewer.
    """

    data: np.ndarray
    sampling: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    nstart: tuple[int, int, int] = (0, 0, 0)
    path: str | None = None
    header_extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    def like(self, data: np.ndarray) -> "Volume":
        """A new volume on the same grid (sampling, origin, nstart) with other data."""
        return Volume(np.asarray(data, dtype=np.float32), self.sampling, self.origin, self.nstart,
                      None, dict(self.header_extra))


def read_volume(path: str, what: str = "map") -> Volume:
    """Read and validate an MRC/CCP4 map (``.mrc``, ``.map``, ``.ccp4``, gzipped too)."""
    import mrcfile

    if not os.path.isfile(path):
        raise InputError(f"{what} file not found: {path}")
    _check_header(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=True, mode="r") as mrc:
                if mrc.data is None or mrc.header is None:
                    raise InputError(f"{what} {path} is not an MRC/CCP4 file")
                data = np.asarray(mrc.data, dtype=np.float32).copy()
                vs = mrc.voxel_size
                vsize = (float(vs.x), float(vs.y), float(vs.z))
                h = mrc.header
                origin = (float(h.origin.x), float(h.origin.y), float(h.origin.z))
                nstart = (int(h.nxstart), int(h.nystart), int(h.nzstart))
                extra = {"mapc": int(h.mapc), "mapr": int(h.mapr), "maps": int(h.maps),
                         "cella": (float(h.cella.x), float(h.cella.y), float(h.cella.z))}
    except InputError:
        raise
    except EOFError:  # a compressed file that ends early
        raise InputError(f"{what} {path} is truncated (the compressed stream ends early): "
                         "an interrupted download or copy? Fetch it again") from None
    except Exception as exc:  # mrcfile raises ValueError/OSError on garbage
        raise InputError(f"{what} {path} is not a readable MRC/CCP4 file ({exc})") from None
    if data.ndim != 3 or min(data.shape) < 2:
        raise InputError(f"{what} {path} is not a 3-D volume (shape {data.shape})")
    if (extra["mapc"], extra["mapr"], extra["maps"]) != (1, 2, 3):
        data = _to_xyz_order(data, extra)
    extra["shape"] = tuple(data.shape)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{what} {path} contains NaN or Inf values")
    if min(vsize) <= 0:
        raise InputError(f"{what} {path} has no voxel size in its header (0 Å/px); set it "
                         "first, e.g. in ChimeraX: `volume #1 voxelSize 1.06` then `save`")
    if max(vsize) - min(vsize) > 1e-3 * max(vsize):
        raise InputError(f"{what} {path} has anisotropic voxels {vsize} Å; resample it to "
                         "cubic voxels first")
    return Volume(data, vsize[0], origin, nstart, path, extra)


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}


def _check_header(path: str, what: str) -> None:
    """Cheap check of the 1024-byte header before mrcfile's permissive reader, which can spend
    seconds (and GBs) on a non-MRC file's garbage extended-header size: 'MAP' at byte 208, or
    (old files without it) sane dimensions and mode; an uncompressed file shorter than its
    header announces is refused as truncated."""
    import bz2
    import gzip

    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(os.path.splitext(path)[1].lower(), open)
    try:
        with opener(path, "rb") as fh:
            head = fh.read(1024)
    except (OSError, EOFError):
        head = b""
    if len(head) < 1024:
        detail = "empty" if os.path.getsize(path) == 0 else "shorter than an MRC header"
        raise InputError(f"{what} {path} is not an MRC/CCP4 file ({detail})")
    for order in "<>":
        nx, ny, nz, mode = (int(v) for v in np.frombuffer(head[:16], dtype=f"{order}i4"))
        if 0 < min(nx, ny, nz) and max(nx, ny, nz) < 100_000 and mode in _MODE_BYTES:
            break
    else:
        if head[208:211] == b"MAP":
            return  # let mrcfile's permissive reader judge
        raise InputError(f"{what} {path} is not an MRC/CCP4 file")
    if opener is open:
        ext = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
        need = 1024 + max(ext, 0) + nx * ny * nz * _MODE_BYTES[mode]
        size = os.path.getsize(path)
        if size < need:
            raise InputError(f"{what} {path} is truncated: {size} bytes, its header announces "
                             f"{need} ({nx} x {ny} x {nz} voxels); an interrupted download or "
                             "copy? Fetch it again")


def _to_xyz_order(data: np.ndarray, axes: dict) -> np.ndarray:
    """Reorder a map stored with non-standard MAPC/MAPR/MAPS into [z, y, x]."""
    order = (axes["maps"], axes["mapr"], axes["mapc"])  # axis of data dims 0,1,2 (1=x,2=y,3=z)
    if sorted(order) != [1, 2, 3]:
        raise InputError(f"invalid axis order MAPC/MAPR/MAPS = {order[::-1]}")
    perm = [order.index(a) for a in (3, 2, 1)]
    return np.ascontiguousarray(np.transpose(data, perm))


_ACTIVE_SET: contextvars.ContextVar = contextvars.ContextVar("deepres_output_set", default=None)


@contextmanager
def deferred_signals():
    """Hold SIGINT/SIGTERM back while a few file operations run (main thread only): their
    handlers are swapped for one that notes the signal, which is handled when the block ends.
    (Not a signal mask: the kernel would hand a masked signal to another thread, where Python
    may notice it late or never.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)
           if signal.getsignal(s) is not None}  # None: a handler set outside Python, kept
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if caught:
            handler = old[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _named(exc: OSError, path: str) -> OSError:
    """The same error about the final path (not the temporary one), for messages."""
    try:
        return type(exc)(exc.errno, exc.strerror or str(exc), path)
    except TypeError:  # an OSError subclass with another signature
        return OSError(exc.errno, exc.strerror or str(exc), path)


class OutputSet:
    """All or nothing: inside ``with OutputSet():`` every file written through
    :func:`atomic_path` keeps a temporary name until the block ends without error; then all
    are renamed at once, SIGINT/SIGTERM held back. On an error or interruption the temporary
    files are removed, so no partial set appears. Nested sets join the outermost one."""

    def __init__(self):
        self.staged: list[tuple[str, str]] = []  # (temporary, final)
        self._token = None

    @property
    def paths(self) -> list[str]:
        return [final for _, final in self.staged]

    def __enter__(self):
        if _ACTIVE_SET.get() is None:
            self._token = _ACTIVE_SET.set(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._token is None:  # nested: the outer set decides
            return False
        _ACTIVE_SET.reset(self._token)
        if exc_type is not None:
            self.discard()
            return False
        with deferred_signals():
            done = []
            for tmp, final in self.staged:
                try:
                    os.replace(tmp, final)
                except OSError as err:
                    for path in done:
                        _remove(path)
                    self.discard()
                    raise _named(err, final) from None
                done.append(final)
        return False

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _remove(tmp)


@contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` (inside an
    :class:`OutputSet`, when the set ends), on any error it is removed and an OSError names
    ``path``. Every output goes through this, so no reader sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    outputs = _ACTIVE_SET.get()
    tmp = None
    try:
        with deferred_signals():  # the temporary file is known before any signal is handled
            fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=directory)
            os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get normal modes
        if outputs is None:
            os.replace(tmp, path)
        else:
            outputs.staged.append((tmp, path))
    except BaseException as exc:
        if tmp is not None:
            _remove(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_volume(path: str, vol: Volume, data: np.ndarray | None = None) -> str:
    """Write ``data`` (default ``vol.data``) as float32 MRC with vol's grid; atomically."""
    import mrcfile

    arr = np.ascontiguousarray(vol.data if data is None else data, dtype=np.float32)
    with atomic_path(path, ".mrc") as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(arr)
        cell = vol.header_extra.get("cella")
        same_grid = cell and vol.header_extra.get("shape") == arr.shape and all(
            abs(c / n - vol.sampling) <= 1e-5 * vol.sampling
            for c, n in zip(cell, arr.shape[::-1]))
        if same_grid:
            # the grid of the file read: copy its cell exactly (no float32 round trip)
            mrc.header.cella.x, mrc.header.cella.y, mrc.header.cella.z = cell
        else:
            mrc.voxel_size = vol.sampling
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = vol.origin
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = vol.nstart
        mrc.update_header_stats()
    return path


def atomic_write_text(path: str, text: str) -> str:
    """Write a text file through a temp file + rename, so readers never see half a file."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def output_paths(out_path: str) -> dict:
    """Files written next to an output map: OUT.mrc, OUT.json, OUT_mask.mrc (auto mask),
    OUT_spread.mrc and OUT_ood.mrc (--uncertainty)."""
    stem = out_path[:-4] if out_path.lower().endswith((".mrc", ".map")) else out_path
    return {"map": out_path, "json": stem + ".json", "mask": stem + "_mask.mrc",
            "spread": stem + "_spread.mrc", "ood": stem + "_ood.mrc"}


def read_mask(path: str, reference: Volume) -> np.ndarray:
    """Read a mask for ``reference``; binarise at 0.5; refuse mismatching or empty masks."""
    m = read_volume(path, "mask")
    if m.shape != reference.shape:
        raise InputError(f"mask {path} has shape {m.shape} but the map has {reference.shape}")
    if abs(m.sampling - reference.sampling) > 1e-3 * reference.sampling:
        raise InputError(f"mask voxel size {m.sampling:.4f} Å differs from the map's "
                         f"{reference.sampling:.4f} Å")
    return check_mask(m.data, path)


def check_mask(values: np.ndarray, name: str = "mask") -> np.ndarray:
    """Binarise a mask at 0.5 (saying so when it was not binary) and refuse empty masks."""
    import logging

    binary = values > 0.5
    if not binary.any():
        raise InputError(f"{name} is empty (no voxel above 0.5)")
    if not np.all(np.isin(values, (0.0, 1.0))):
        logging.getLogger(__name__).warning(
            "%s is not binary (values %.3g..%.3g): thresholded at 0.5", name,
            float(values.min()), float(values.max()))
    return binary
