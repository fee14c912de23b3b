"""Fourier filters: cut-off, B-factors, resampling, phase randomisation, FSC."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import fft as sfft

from deepres_plugin.backend.filters import (apply_bfactor, fourier_filter, frequency_squared,
                                            fsc, lowpass_stack, phase_randomize, radial_power,
                                            raised_cosine, resample, resolution_at_threshold)


@pytest.fixture(scope="module")
def noise_map():
    return np.random.default_rng(0).standard_normal((48, 56, 64)).astype(np.float32)


@pytest.mark.parametrize("sampling,res", [(1.0, 6.0), (0.5, 2.0), (2.0, 15.0)])
def test_raised_cosine_is_xmipps(sampling, res):
    """The paper's filter: gain 1 up to f_c = sampling/res (cycles/px), ½(1 + cos(π (f − f_c) /
    0.02)) above, 0 from f_c + 0.02 on; the pass band reaches the cut-off."""
    fc = sampling / res
    f = np.array([0.0, fc - 0.01, fc, fc + 0.005, fc + 0.01, fc + 0.02, fc + 0.03])
    g = raised_cosine(f / sampling, sampling, res)
    assert g[0] == 1.0 and g[1] == 1.0 and g[2] == 1.0
    assert g[3] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.25)), abs=1e-6)
    assert g[4] == pytest.approx(0.5, abs=1e-6)
    assert g[5] == pytest.approx(0.0, abs=1e-7) and g[6] == 0.0


@pytest.mark.parametrize("sampling,res", [(1.0, 6.0), (0.8, 3.0), (2.0, 10.0)])
def test_power_beyond_cutoff_is_zero(noise_map, sampling, res):
    out = fourier_filter(noise_map, sampling, res)
    f, p = radial_power(out, sampling)
    edge = 1.0 / res + 0.02 / sampling + 1.0 / (min(out.shape) * sampling)  # cosine + 1 shell
    passband = p[f < 1.0 / res - 1.0 / (min(out.shape) * sampling)]
    assert p[f > edge].max() < 1e-10 * passband.mean()
    f0, p0 = radial_power(noise_map, sampling)
    assert np.allclose(passband, p0[: passband.size], rtol=1e-4)  # untouched below


def test_bfactor_ratio_of_radial_profiles(noise_map):
    sampling, b = 1.0, 60.0
    f, p0 = radial_power(noise_map, sampling)
    _, p1 = radial_power(apply_bfactor(noise_map, sampling, b), sampling)
    # power ratio = amplitude gain² = exp(−B s²/2); shells are narrow (1/64 Å⁻¹)
    expected = np.exp(-b * f ** 2 / 2.0)
    sel = expected > 1e-3
    assert np.allclose(p1[sel] / p0[sel], expected[sel], rtol=0.03)
    # per coefficient it is exact: |F'| / |F| = exp(−B s²/4); B < 0 sharpens
    ft0 = np.abs(sfft.rfftn(noise_map))
    ft1 = np.abs(sfft.rfftn(apply_bfactor(noise_map, sampling, -b)))
    gain = np.exp(b * frequency_squared(noise_map.shape, sampling) / 4.0)
    assert np.allclose(ft1, ft0 * gain, rtol=2e-3, atol=1e-3 * ft0.max())


def test_lowpass_stack_matches_single_filters(noise_map):
    stack = lowpass_stack(noise_map, 1.0, [3.0, 7.0], bfactor=20.0)
    for out, res in zip(stack, (3.0, 7.0)):
        assert np.allclose(out, fourier_filter(noise_map, 1.0, res, 20.0), atol=1e-5)


def _blob(shape, sampling, centre_xyz, sigma=2.5):
    z, y, x = np.meshgrid(*(np.arange(n) * sampling for n in shape), indexing="ij")
    cx, cy, cz = centre_xyz
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma ** 2))


def _centroid_xyz(data, sampling_zyx):
    """Intensity-weighted centre (x, y, z Å); ``sampling_zyx`` per array axis."""
    w = np.clip(data, 0, None)
    zyx = [(i * w).sum() / w.sum() * s for i, s in zip(np.indices(data.shape), sampling_zyx)]
    return np.array(zyx[::-1])


@pytest.mark.parametrize("shape", [(40, 48, 56), (36, 45, 51)])
@pytest.mark.parametrize("new_sampling", [0.6, 1.7])
def test_resampling_keeps_blob_centre_in_angstrom(shape, new_sampling):
    sampling, centre = 1.0, np.array([24.3, 21.7, 18.2])  # x, y, z Å
    blob = _blob(shape, sampling, centre)
    out, reached = resample(blob, sampling, new_sampling)
    assert all(abs(r - new_sampling) < 0.05 for r in reached)
    assert out.shape == tuple(int(round(n * sampling / new_sampling)) for n in shape)
    assert np.allclose(_centroid_xyz(out, reached), centre, atol=0.05)
    # densities are not rescaled: the peak stays ~1 (sampled off-centre on the coarse grid)
    assert 0.85 < out.max() <= 1.02


def test_resample_same_sampling_is_a_copy(noise_map):
    out, reached = resample(noise_map, 1.0, 1.0)
    assert reached == (1.0, 1.0, 1.0) and np.array_equal(out, noise_map)
    assert out is not noise_map


def test_phase_randomisation_beyond_resolution_only(noise_map):
    sampling, res = 1.0, 5.0
    smooth = fourier_filter(noise_map, sampling, 2.5)  # some content at all frequencies
    out = phase_randomize(smooth, sampling, res, seed=3)
    f0, f1 = sfft.rfftn(smooth), sfft.rfftn(out)
    beyond = frequency_squared(smooth.shape, sampling) > (1.0 / res) ** 2
    strong = np.abs(f0) > 1e-3 * np.abs(f0).max()
    assert np.allclose(np.abs(f1), np.abs(f0), rtol=1e-3, atol=1e-4 * np.abs(f0).max())
    assert np.allclose(f1[~beyond], f0[~beyond], rtol=1e-3, atol=1e-4 * np.abs(f0).max())
    dphi = np.abs(np.angle(f1[beyond & strong] / f0[beyond & strong]))
    assert dphi.mean() > 1.2  # uniform random phase differences average π/2
    freqs, curve = fsc(smooth, out, sampling)
    assert curve[freqs < 1 / res - 0.02].min() > 0.999
    assert abs(curve[freqs > 1 / res + 0.02]).mean() < 0.1
    assert np.array_equal(out, phase_randomize(smooth, sampling, res, seed=3))  # deterministic


def test_fsc_with_itself_is_one(noise_map):
    freqs, curve = fsc(noise_map, noise_map, 1.3)
    assert np.allclose(curve, 1.0, atol=1e-6)
    assert freqs[-1] < 0.5 / 1.3 and freqs[0] > 0


def test_fsc_of_independent_noise_is_small(noise_map):
    other = np.random.default_rng(9).standard_normal(noise_map.shape).astype(np.float32)
    _, curve = fsc(noise_map, other, 1.0)
    assert np.abs(curve[5:]).max() < 0.15


def test_resolution_at_threshold_interpolates():
    freqs = np.array([0.05, 0.1, 0.15, 0.2, 0.25])
    curve = np.array([1.0, 0.9, 0.7, 0.3, 0.1])
    # crosses 0.5 halfway between 0.15 and 0.2 → f = 0.175 → 5.714 Å
    assert resolution_at_threshold(freqs, curve, 0.5) == pytest.approx(1 / 0.175)
    assert resolution_at_threshold(freqs, np.ones(5), 0.5) == pytest.approx(4.0)
