"""prep.dsp.spectral against the scipy.signal functions it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from prep.dsp import spectral


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 160, 1000, 1024])
def test_windows_match_scipy(n):
    np.testing.assert_allclose(spectral.hann(n), signal.get_window("hann", n), atol=1e-12)
    for alpha in (0.0, 0.25, 0.5, 1.0):
        np.testing.assert_allclose(spectral.tukey(n, alpha), signal.get_window(("tukey", alpha), n), atol=1e-12)


@pytest.mark.parametrize(("size", "nper", "hop"), [(48000, 1024, 256), (5000, 1024, 256), (1024, 1024, 256),
                                                   (3001, 160, 80)])
def test_stft_matches_scipy(size, nper, hop):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    _, _, ref = signal.stft(x, 16000, nperseg=nper, noverlap=nper - hop, boundary=None, padded=False)
    ours = spectral.stft(x, nper, hop)
    assert ours.shape == ref.T.shape
    np.testing.assert_allclose(ours, ref.T, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize(("size", "rate", "nper"), [(48000, 16000, 1024), (5000, 44100, 2048), (2048, 8000, 2048),
                                                    (10001, 22050, 1023)])
def test_welch_matches_scipy(size, rate, nper):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    _, ref = signal.welch(x, rate, nperseg=nper, noverlap=nper // 2, detrend=False)
    np.testing.assert_allclose(spectral.welch(x, sample_rate=rate, nper=nper), ref, rtol=1e-4)  # both in float32


@pytest.mark.parametrize(("size", "nper", "hop"), [(48000, 512, 128), (48000, 1024, 1024), (700, 512, 128),
                                                   (20000, 511, 100)])
def test_spectrogram_matches_scipy(size, nper, hop):
    x = (np.random.default_rng(size).standard_normal(size) + 0.3).astype(np.float32)  # a DC offset to remove
    _, _, ref = signal.spectrogram(x, 22050, nperseg=nper, noverlap=nper - hop, mode="psd")
    ours = spectral.spectrogram(x, sample_rate=22050, nper=nper, hop=hop)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=1e-4 * ref.max())  # scipy works in float32 here


def test_spectrogram_of_selected_frames_equals_those_columns_of_the_full_one():
    x = np.random.default_rng(5).standard_normal(30001).astype(np.float32)
    full = spectral.spectrogram(x, sample_rate=16000, nper=512, hop=300)
    pick = np.array([0, 3, 3, 40, full.shape[1] - 1])
    picked = spectral.spectrogram(x, sample_rate=16000, nper=512, hop=300, select=pick)
    np.testing.assert_array_equal(picked, full[:, pick])
