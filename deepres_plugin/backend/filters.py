"""Fourier-space filters on maps: raised-cosine low-pass, B-factors, resampling, phase
randomisation, radial power and FSC. All vectorised with scipy.fft (multi-threaded)."""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft

WORKERS = -1
#: raised-cosine width in normalised frequency (cycles/px), as the paper's Xmipp filter
COSINE_WIDTH = 0.02


def frequency_squared(shape, sampling: float) -> np.ndarray:
    """|s|² (1/Å²) on the rfftn grid of a map of ``shape`` with voxel size ``sampling``."""
    fz = sfft.fftfreq(shape[0], d=sampling)[:, None, None]
    fy = sfft.fftfreq(shape[1], d=sampling)[None, :, None]
    fx = sfft.rfftfreq(shape[2], d=sampling)[None, None, :]
    return (fz * fz + fy * fy + fx * fx).astype(np.float32)


def raised_cosine(s: np.ndarray, sampling: float, resolution: float,
                  width: float = COSINE_WIDTH) -> np.ndarray:
    """Xmipp's (the paper's) low-pass gain at spatial frequency ``s`` (1/Å): with f = s·sampling
    and f_c = sampling/resolution (cycles/px), 1 for f ≤ f_c, ½(1 + cos(π (f − f_c)/width)) up
    to f_c + width, 0 beyond. The pass band reaches the cut-off; the edge lies above it."""
    f = s * sampling  # normalised frequency, Nyquist = 0.5
    fc = sampling / resolution
    t = np.clip((f - fc) / width, 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def fourier_filter(data: np.ndarray, sampling: float, resolution: float | None = None,
                   bfactor: float = 0.0, width: float = COSINE_WIDTH) -> np.ndarray:
    """One FFT pass: optional raised-cosine low-pass at ``resolution`` Å and B-factor
    ``bfactor`` Å² (gain exp(−B s²/4): B > 0 blurs, B < 0 sharpens)."""
    ft = sfft.rfftn(data, workers=WORKERS)
    ft *= _gain(data.shape, sampling, resolution, bfactor, width)
    return sfft.irfftn(ft, s=data.shape, workers=WORKERS).astype(np.float32)


def lowpass_stack(data: np.ndarray, sampling: float, resolutions, bfactor: float = 0.0,
                  width: float = COSINE_WIDTH) -> np.ndarray:
    """Copies of ``data`` low-passed at each of ``resolutions`` (one forward FFT)."""
    ft = sfft.rfftn(data, workers=WORKERS)
    s2 = frequency_squared(data.shape, sampling)
    s = np.sqrt(s2)
    base = np.exp(-bfactor * s2 / 4.0).astype(np.float32) if bfactor else 1.0
    out = np.empty((len(resolutions),) + data.shape, np.float32)
    for i, res in enumerate(resolutions):
        out[i] = sfft.irfftn(ft * (base * raised_cosine(s, sampling, res, width)),
                             s=data.shape, workers=WORKERS)
    return out


def _gain(shape, sampling, resolution, bfactor, width):
    s2 = frequency_squared(shape, sampling)
    gain = np.ones_like(s2)
    if bfactor:
        gain *= np.exp(-bfactor * s2 / 4.0)
    if resolution is not None:
        gain *= raised_cosine(np.sqrt(s2), sampling, resolution, width)
    return gain


def apply_bfactor(data: np.ndarray, sampling: float, bfactor: float) -> np.ndarray:
    """Sharpen (B < 0) or blur (B > 0) by exp(−B s²/4)."""
    return fourier_filter(data, sampling, None, bfactor)


def resampled_shape(shape, sampling: float, new_sampling: float) -> tuple[int, int, int]:
    return tuple(max(2, int(round(n * sampling / new_sampling))) for n in shape)


def resample(data: np.ndarray, sampling: float, new_sampling: float):
    """Fourier resampling (crop or zero-pad) to about ``new_sampling`` Å/px, any box shape.

    Voxel 0 stays at the same place in Å; the box length is kept, so the sampling actually
    reached is length/new_size per axis. Returns (data, reached sampling per array axis, i.e.
    in (z, y, x) order)."""
    new_shape = resampled_shape(data.shape, sampling, new_sampling)
    if new_shape == tuple(data.shape):
        return data.astype(np.float32, copy=True), (sampling,) * 3
    ft = sfft.rfftn(data, workers=WORKERS)
    out = np.zeros(new_shape[:2] + (new_shape[2] // 2 + 1,), np.complex64)
    idx = []
    for ax in range(2):
        n_in, n_out = data.shape[ax], new_shape[ax]
        m = min(n_in, n_out)
        k = np.concatenate([np.arange(0, (m + 1) // 2), np.arange(-(m // 2), 0)])
        idx.append(k)
    kx = min(data.shape[2] // 2 + 1, new_shape[2] // 2 + 1)
    out[np.ix_(idx[0] % new_shape[0], idx[1] % new_shape[1], np.arange(kx))] = \
        ft[np.ix_(idx[0] % data.shape[0], idx[1] % data.shape[1], np.arange(kx))]
    res = sfft.irfftn(out, s=new_shape, workers=WORKERS)
    res *= np.prod(new_shape) / np.prod(data.shape)
    reached = tuple(n * sampling / m for n, m in zip(data.shape, new_shape))
    return res.astype(np.float32), reached


def phase_randomize(data: np.ndarray, sampling: float, resolution: float,
                    seed: int = 0) -> np.ndarray:
    """Randomise Fourier phases beyond 1/resolution, keeping amplitudes (and Hermitian symmetry)."""
    rng = np.random.default_rng(seed)
    ft = sfft.rfftn(data, workers=WORKERS)
    noise = sfft.rfftn(rng.standard_normal(data.shape).astype(np.float32), workers=WORKERS)
    phase = noise / np.maximum(np.abs(noise), 1e-12)
    beyond = frequency_squared(data.shape, sampling) > (1.0 / resolution) ** 2
    ft[beyond] = np.abs(ft[beyond]) * phase[beyond]
    return sfft.irfftn(ft, s=data.shape, workers=WORKERS).astype(np.float32)


def _shell_index(shape, sampling, nbins):
    s = np.sqrt(frequency_squared(shape, sampling))
    nyq = 0.5 / sampling
    idx = np.minimum((s / nyq * nbins).astype(np.int64), nbins)  # nbins = beyond Nyquist
    # rfftn keeps half of the x axis: weight the columns that stand for two coefficients
    w = np.full(s.shape, 2.0, np.float64)
    w[..., 0] = 1.0
    if shape[2] % 2 == 0:
        w[..., -1] = 1.0
    centres = (np.arange(nbins) + 0.5) / nbins * nyq
    return idx.ravel(), w.ravel(), centres


def radial_power(data: np.ndarray, sampling: float, nbins: int | None = None):
    """Radially averaged power spectrum: (frequency 1/Å, mean |F|²) per shell up to Nyquist."""
    nbins = nbins or min(data.shape) // 2
    idx, w, centres = _shell_index(data.shape, sampling, nbins)
    p = np.abs(sfft.rfftn(data, workers=WORKERS)).ravel() ** 2
    num = np.bincount(idx, w * p, nbins + 1)[:nbins]
    den = np.bincount(idx, w, nbins + 1)[:nbins]
    return centres, num / np.maximum(den, 1)


def fsc(a: np.ndarray, b: np.ndarray, sampling: float, nbins: int | None = None):
    """Fourier shell correlation of two maps: (frequency 1/Å, FSC) per shell."""
    nbins = nbins or min(a.shape) // 2
    idx, w, centres = _shell_index(a.shape, sampling, nbins)
    fa = sfft.rfftn(a, workers=WORKERS).ravel()
    fb = sfft.rfftn(b, workers=WORKERS).ravel()
    num = np.bincount(idx, w * np.real(fa * np.conj(fb)), nbins + 1)[:nbins]
    pa = np.bincount(idx, w * np.abs(fa) ** 2, nbins + 1)[:nbins]
    pb = np.bincount(idx, w * np.abs(fb) ** 2, nbins + 1)[:nbins]
    return centres, num / np.maximum(np.sqrt(pa * pb), 1e-30)


def resolution_at_threshold(freqs: np.ndarray, curve: np.ndarray, threshold: float) -> float:
    """Resolution (Å) where ``curve`` first drops below ``threshold`` (linear interpolation)."""
    below = np.nonzero(curve < threshold)[0]
    if below.size == 0:
        return float(1.0 / freqs[-1])
    i = int(below[0])
    if i == 0:
        return float(1.0 / freqs[0])
    f0, f1, c0, c1 = freqs[i - 1], freqs[i], curve[i - 1], curve[i]
    f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0)
    return float(1.0 / f)
