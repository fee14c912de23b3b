"""Local resolution by local FSC (BlocRes-like), vectorised: of two half maps, or of a map
against the density of its fitted atomic model (``reference="model"``, no half maps needed).

Both inputs are first prewhitened with a global filter (the FSC is unchanged by it, but the
window no longer leaks strong low-frequency signal into the high shells). Soft-windowed boxes
(cosine-edged sphere) are centred on a coarse grid (every ``step`` voxels)
that covers the mask; each pair of windowed boxes is Fourier transformed in batches (scipy.fft
over a stack of boxes, chunked to bound memory) and its FSC is binned into shells with one
matrix product. The resolution is where the FSC first drops below ``threshold`` (linear
interpolation between shells); the coarse field is interpolated back to every mask voxel
(trilinear) and is 0 outside the mask. This is an SNR-based reference: sharpening both halves
by the same B changes nothing here, which is what the oversharpening check relies on."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy import fft as sfft

from .filters import WORKERS, frequency_squared, fsc, resolution_at_threshold
from .volume import (InputError, OutputSet, atomic_write_text, output_paths, read_mask,
                     read_volume, write_volume)

log = logging.getLogger(__name__)

#: FSC threshold for half-map local FSC (BlocRes convention); 0.143 is the other usual choice
HALF_MAP_THRESHOLD = 0.5
#: map-vs-model threshold: the model is noise-free, FSC_model = sqrt(2 FSC_half / (1 + FSC_half))
#: (Rosenthal & Henderson's C_ref), so 0.5 here is the half-map 0.143 criterion
MODEL_THRESHOLD = 0.5
REFERENCES = ("half maps", "model")


def half_map_equivalent(threshold: float) -> float:
    """The half-map FSC threshold that a map-vs-model ``threshold`` stands for: c² / (2 − c²)
    (0.5 → 0.143; the half-map default 0.5 corresponds to a map–model 0.816)."""
    return threshold ** 2 / (2.0 - threshold ** 2)
#: automatic box edge = BOX_FACTOR × expected (global FSC 0.143) resolution
BOX_FACTOR = 7.0
MIN_BOX = 16
#: default step between box centres = box / STEP_DIVISOR (the field is smooth on that scale)
STEP_DIVISOR = 6
#: memory for one chunk of boxes (bytes, approximate)
CHUNK_BYTES = 256 * 2 ** 20


@dataclass
class LocalFSCResult:
    """Local-FSC resolution (Å, input grid, 0 outside the mask) and how it was made."""

    resolution: np.ndarray
    mask: np.ndarray
    sampling: float
    box: int  # voxels
    step: int  # voxels between box centres
    threshold: float
    global_resolution: float | None
    n_boxes: int
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    reference: str = "half maps"  # or "model": map vs its atomic model's density

    @property
    def box_angstrom(self) -> float:
        return self.box * self.sampling


def soft_mask(mask: np.ndarray, sampling: float, edge: float = 6.0) -> np.ndarray:
    """A smooth version of a binary mask (1 inside, Gaussian fall-off over ~``edge`` Å)."""
    sigma = max(1.0, edge / 3.0 / sampling)
    g = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    return np.clip(np.maximum(2.0 * g, mask), 0.0, 1.0).astype(np.float32)


def global_resolution(h1: np.ndarray, h2: np.ndarray, sampling: float,
                      mask: np.ndarray | None = None, threshold: float = 0.143) -> float:
    """Global (soft-masked) half-map FSC resolution in Å at ``threshold``."""
    if mask is not None:
        sm = soft_mask(mask, sampling)
        h1, h2 = h1 * sm, h2 * sm
    freqs, curve = fsc(h1, h2, sampling)
    return resolution_at_threshold(freqs[1:], curve[1:], threshold)


def prewhiten(h1: np.ndarray, h2: np.ndarray, sampling: float, separate: bool = False):
    """Divide both halves by the radial amplitude spectrum of their average, out to the cube's
    corners (one global filter, so the global FSC is unchanged). Without this, the strong
    low-frequency signal leaks through the window into the high shells and the local FSC
    reads too good; a sharpened map's amplified corners would swamp every shell.
    ``separate``: each input by its own spectrum (a map and a model map: different scales)."""
    f1 = sfft.rfftn(h1, workers=WORKERS)
    f2 = sfft.rfftn(h2, workers=WORKERS)
    s2 = frequency_squared(h1.shape, sampling)
    shell = np.rint(np.sqrt(s2) * sampling * min(h1.shape)).astype(np.int64).ravel()
    count = np.bincount(shell)
    full = count > 0
    centres = np.bincount(shell, s2.ravel())[full] / count[full]

    def gain(f):
        power = np.bincount(shell, np.abs(f).ravel() ** 2)[full] / count[full]
        # log-amplitude linear in s² between shell centres: exact for any B-factor difference
        log_amp = 0.5 * np.interp(s2, centres, np.log(power + 1e-30))
        floor = np.log(1e-6) + float(np.median(log_amp))  # only empty (zero-power) shells
        return np.exp(-np.maximum(log_amp, floor)).astype(np.float32)

    gains = (gain(f1), gain(f2)) if separate else (gain(0.5 * (f1 + f2)),) * 2
    return tuple(sfft.irfftn(f * g, s=h1.shape, workers=WORKERS).astype(np.float32)
                 for f, g in zip((f1, f2), gains))


def auto_box(resolution: float, sampling: float, shape, factor: float = BOX_FACTOR) -> int:
    """Box edge in voxels (even): ``factor`` × resolution, at least MIN_BOX, at most the map."""
    n = int(round(factor * resolution / sampling))
    n = max(MIN_BOX, n + n % 2)
    return min(n, int(min(shape)) // 2 * 2)


def window(n: int, edge: float | None = None) -> np.ndarray:
    """Cosine-edged sphere in an n³ box, centred on voxel n//2, radius n/2 − 1, soft edge
    of ``edge`` voxels (default n/4)."""
    edge = max(2.0, n / 4.0) if edge is None else float(edge)
    r_out = n / 2.0 - 1.0
    c = np.arange(n, dtype=np.float32) - n // 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    t = np.clip((r - (r_out - edge)) / edge, 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def shell_matrix(n: int) -> np.ndarray:
    """(n²(n//2+1), n//2+1) matrix summing rfftn coefficients of an n³ box into integer
    shells 0..n//2, each coefficient weighted by how many full-FFT terms it stands for."""
    k = sfft.fftfreq(n) * n
    kx = sfft.rfftfreq(n) * n
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    shell = np.rint(r).astype(np.int64).ravel()
    w = np.full((n, n, kx.size), 2.0, np.float32)
    w[..., 0] = 1.0
    if n % 2 == 0:
        w[..., -1] = 1.0
    nsh = n // 2 + 1
    keep = shell < nsh
    mat = np.zeros((shell.size, nsh), np.float32)
    mat[np.nonzero(keep)[0], shell[keep]] = w.ravel()[keep]
    return mat


def crossing_resolution(curves: np.ndarray, n: int, sampling: float,
                        threshold: float) -> np.ndarray:
    """Per row of ``curves`` (FSC in shells 0..n//2): resolution (Å) where the FSC first drops
    below ``threshold`` from shell 1 on, linearly interpolated in frequency; clamped to
    [2·sampling, n·sampling]."""
    c = curves[:, 1:]  # shell k = 1.. at frequency k / (n sampling)
    below = c < threshold
    any_below = below.any(axis=1)
    first = np.argmax(below, axis=1)  # index into c, shell = first + 1
    rows = np.arange(c.shape[0])
    prev = np.maximum(first - 1, 0)
    c0, c1 = c[rows, prev], c[rows, first]
    frac = np.where(first > 0, (c0 - threshold) / np.maximum(c0 - c1, 1e-12), 0.0)
    shell = np.where(first > 0, prev + 1 + np.clip(frac, 0.0, 1.0), 1.0)
    shell = np.where(any_below, shell, n / 2.0)
    res = n * sampling / shell
    return np.clip(res, 2.0 * sampling, n * sampling).astype(np.float32)


def coarse_centres(mask: np.ndarray, step: int):
    """Coarse grid (every ``step`` voxels, shape m) and which of its points are needed to
    interpolate every mask voxel trilinearly. Returns (m, needed bool array)."""
    m = tuple(int(np.ceil((s - 1) / step)) + 1 for s in mask.shape)
    padded = np.zeros(tuple(mi * step for mi in m), bool)
    padded[:mask.shape[0], :mask.shape[1], :mask.shape[2]] = mask
    cells = padded.reshape(m[0], step, m[1], step, m[2], step).any(axis=(1, 3, 5))
    needed = cells.copy()
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                if dz or dy or dx:
                    needed[dz:, dy:, dx:] |= cells[:m[0] - dz, :m[1] - dy, :m[2] - dx]
    return m, needed


def _box_fsc(b1: np.ndarray, b2: np.ndarray, win: np.ndarray, win_ft: np.ndarray,
             shells2: np.ndarray) -> np.ndarray:
    """FSC curves (B, n//2+1) of a stack of box pairs (B, n, n, n), both under window ``win``
    after removing each box's windowed mean (done in Fourier space: FT(w·b) − mean·FT(w)).
    ``shells2`` is shell_matrix repeated for the interleaved real/imaginary parts."""
    wsum = float(win.sum())
    nb = b1.shape[0]
    parts = []
    for b in (b1, b2):
        b *= win
        mean = (b.sum(axis=(1, 2, 3)) / wsum).astype(np.complex64)
        f = sfft.rfftn(b, axes=(1, 2, 3), workers=WORKERS).reshape(nb, -1)
        f -= mean[:, None] * win_ft
        parts.append(f.view(np.float32))
    v1, v2 = parts
    num = (v1 * v2) @ shells2
    p1 = np.square(v1, out=v1) @ shells2
    p2 = np.square(v2, out=v2) @ shells2
    return num / np.maximum(np.sqrt(p1 * p2), 1e-30)


def local_fsc(h1: np.ndarray, h2: np.ndarray, sampling: float, mask: np.ndarray,
              box: float | None = None, step: int | None = None,
              threshold: float = HALF_MAP_THRESHOLD, whiten: bool = True,
              progress: bool = False, reference: str = "half maps") -> LocalFSCResult:
    """Local FSC resolution map of two half maps (Å, 0 outside ``mask``); with
    ``reference="model"``, of a map (``h1``) and its model's density (``h2``).

    ``box``: box edge in Å (default BOX_FACTOR × global resolution: half-map FSC 0.143, or
    map–model FSC 0.5, ≥ MIN_BOX voxels); ``step``: voxels between box centres (default
    box/STEP_DIVISOR, at least 1)."""
    t0 = time.perf_counter()
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {REFERENCES}, got {reference!r}")
    model = reference == "model"
    if h1.shape != h2.shape:
        raise InputError(f"{'map and model map' if model else 'half maps'} differ in shape: "
                         f"{h1.shape} vs {h2.shape}")
    if mask.shape != h1.shape:
        raise InputError(f"mask shape {mask.shape} differs from the half maps' {h1.shape}")
    if not 0.0 < threshold < 1.0:
        raise InputError(f"FSC threshold must be between 0 and 1, got {threshold}")
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise InputError("mask is empty")
    h1 = np.asarray(h1, np.float32)
    h2 = np.asarray(h2, np.float32)
    glob_threshold = MODEL_THRESHOLD if model else 0.143
    glob = global_resolution(h1, h2, sampling, mask, glob_threshold)
    if box is None:
        n = auto_box(glob, sampling, h1.shape)
        log.info("global FSC(%g) %.2f Å -> box %d voxels (%.1f Å)", glob_threshold, glob, n,
                 n * sampling)
    else:
        if not box > 0:
            raise InputError(f"box must be positive (Å), got {box}")
        n = int(round(box / sampling))
        n += n % 2
        if n < 8:
            raise InputError(f"box {box} Å is only {n} voxels at {sampling} Å/px; use ≥ 8 voxels")
        if n > min(h1.shape):
            raise InputError(f"box {box} Å ({n} voxels) is larger than the map {h1.shape}")
    step = max(1, int(round(n / STEP_DIVISOR))) if step is None else int(step)
    if step < 1:
        raise InputError(f"step must be ≥ 1 voxel, got {step}")
    if whiten:
        h1, h2 = prewhiten(h1, h2, sampling, separate=model)
    t_setup = time.perf_counter()

    m, needed = coarse_centres(mask, step)
    cz, cy, cx = np.nonzero(needed)
    pad_lo, pad_hi = n // 2, n // 2 + step
    p1 = np.pad(h1, [(pad_lo, pad_hi)] * 3)
    p2 = np.pad(h2, [(pad_lo, pad_hi)] * 3)
    v1 = np.lib.stride_tricks.sliding_window_view(p1, (n, n, n))
    v2 = np.lib.stride_tricks.sliding_window_view(p2, (n, n, n))
    win = window(n)
    win_ft = sfft.rfftn(win).astype(np.complex64).ravel()
    shells2 = np.repeat(shell_matrix(n), 2, axis=0)
    chunk = max(8, int(CHUNK_BYTES // (n ** 3 * 40)))
    values = np.empty(cz.size, np.float32)
    todo = range(0, cz.size, chunk)
    if progress:
        from tqdm import tqdm
        todo = tqdm(todo, desc="local FSC", unit="chunk")
    for s in todo:
        z, y, x = cz[s:s + chunk] * step, cy[s:s + chunk] * step, cx[s:s + chunk] * step
        curves = _box_fsc(v1[z, y, x], v2[z, y, x], win, win_ft, shells2)
        values[s:s + chunk] = crossing_resolution(curves, n, sampling, threshold)
    t_boxes = time.perf_counter()

    coarse = np.zeros(m, np.float32)
    coarse[cz, cy, cx] = values
    idx = np.nonzero(mask)
    coords = np.stack(idx).astype(np.float32) / step
    res = np.zeros(h1.shape, np.float32)
    res[idx] = ndimage.map_coordinates(coarse, coords, order=1, mode="nearest")
    t_end = time.perf_counter()
    timings = {"setup_s": t_setup - t0, "boxes_s": t_boxes - t_setup,
               "interpolate_s": t_end - t_boxes, "total_s": t_end - t0}
    log.info("local FSC: %d boxes of %d³ (step %d) in %.1f s", cz.size, n, step, t_end - t0)
    warns = _warnings(res[mask], glob, n, sampling, model)
    for w in warns:
        log.warning(w)
    return LocalFSCResult(res, mask, float(sampling), n, step, float(threshold), glob,
                          int(cz.size), timings, warns, reference)


def _warnings(inside: np.ndarray, glob: float, n: int, sampling: float,
              model: bool = False) -> list[str]:
    out = []
    if glob <= 2.05 * sampling and model:
        out.append(f"map and model agree up to Nyquist ({2 * sampling:.2f} Å): was the map "
                   "computed from the model?")
    elif glob <= 2.05 * sampling:
        out.append(f"the half maps agree up to Nyquist ({2 * sampling:.2f} Å): are they "
                   "independent half maps? (local FSC can only say 'at least Nyquist')")
    for bound, word in ((n * sampling, "box size"), (2 * sampling, "Nyquist")):
        frac = float(np.mean(np.isclose(inside, bound, rtol=1e-4)))
        if frac > 0.3:
            out.append(f"{100 * frac:.0f} % of masked voxels sit at the {word} limit "
                       f"({bound:.2f} Å)" + (": use a larger --box" if word == "box size"
                                             else ""))
    return out


def read_halves(half1: str, half2: str):
    """Read two half maps and check that they share one grid; returns (vol1, vol2)."""
    v1 = read_volume(half1, "half map 1")
    v2 = read_volume(half2, "half map 2")
    if v1.shape != v2.shape:
        raise InputError(f"half maps differ in shape: {v1.shape} vs {v2.shape}")
    if abs(v1.sampling - v2.sampling) > 1e-3 * v1.sampling:
        raise InputError(f"half maps differ in voxel size: {v1.sampling:.4f} vs "
                         f"{v2.sampling:.4f} Å")
    return v1, v2


def run(half1: str, half2: str | None, out_path: str, mask_path: str | None = None,
        box: float | None = None, step: int | None = None, threshold: float | None = None,
        progress: bool = False, atoms: str | None = None) -> LocalFSCResult:
    """Read two half maps, or a map (``half1``) and its fitted model (``atoms``), + mask (else
    an automatic one written as OUT_mask.mrc), compute the local FSC and write OUT.mrc (grid
    of the first map) and OUT.json (stats, settings, ``reference``)."""
    from .masks import auto_mask

    if (half2 is None) == (atoms is None):
        raise InputError("give either a second half map or --atoms MODEL (a model fitted to "
                         "the map), not " + ("both" if atoms else "neither"))
    if atoms:
        from .sharpening import load_model, model_reference

        v1 = read_volume(half1, "map")
        reference = model_reference(load_model(atoms, v1), v1)
    else:
        v1, v2 = read_halves(half1, half2)
        reference = v2.data
    if mask_path:
        mask = read_mask(mask_path, v1)
    else:
        mask = auto_mask(v1.data if atoms else 0.5 * (v1.data + reference), v1.sampling)
    if threshold is None:
        threshold = MODEL_THRESHOLD if atoms else HALF_MAP_THRESHOLD
    result = local_fsc(v1.data, reference, v1.sampling, mask, box, step, threshold,
                       progress=progress, reference="model" if atoms else "half maps")
    paths = output_paths(out_path)
    inputs = ({"map": half1, "atomic_model": atoms} if atoms else
              {"half1": half1, "half2": half2})
    with OutputSet():  # all or nothing: no half-written result set
        write_volume(paths["map"], v1, result.resolution)
        if not mask_path:
            write_volume(paths["mask"], v1, mask.astype(np.float32))
        _write_summary(paths, inputs, mask_path, v1, result)
    return result


def _write_summary(paths, inputs, mask_path, v1, result) -> None:
    from . import report

    model = result.reference == "model"
    glob = {"global_fsc_threshold": MODEL_THRESHOLD if model else 0.143,
            "global_fsc_A": result.global_resolution}
    if not model:
        glob["global_fsc_0143_A"] = result.global_resolution
    summary = {
        **{k: os.path.abspath(v) for k, v in inputs.items()}, "reference": result.reference,
        "mask": os.path.abspath(mask_path) if mask_path else os.path.abspath(paths["mask"]),
        "output": os.path.abspath(paths["map"]), "sampling": v1.sampling,
        "shape_zyx": list(v1.shape), "origin_xyz": list(v1.origin),
        "method": "local FSC (soft-windowed boxes, prewhitened)" + (
            " of the map against its model's density (B = 0, to Nyquist)" if model else ""),
        "threshold": result.threshold,
        "half_map_equivalent_threshold": (half_map_equivalent(result.threshold) if model
                                          else result.threshold),
        "box_voxels": result.box, "box_A": result.box_angstrom, "step_voxels": result.step,
        "n_boxes": result.n_boxes, **glob,
        "stats": report.stats(result.resolution[result.mask]),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "warnings": result.warnings}
    atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
