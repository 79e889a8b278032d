"""prep.dsp.fft against scipy.fft (bit for bit), and what the check path leaves unimported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.fft

from prep.dsp import fft


def _signal(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis", "n"), [
    ((1000,), -1, None),
    ((1003,), 0, None),  # odd length, prime factor 17 * 59
    ((37, 882), -1, None),  # many short frames, as the STFTs use them
    ((882, 37), 0, None),
    ((5, 700), -1, 1024),  # zero-padded (the band envelope's overlap-save)
    ((5, 700), 1, 512),  # cut
])
def test_rfft_irfft_equal_scipy_bit_for_bit(dtype, shape, axis, n):
    x = _signal(shape, dtype)
    ours, theirs = fft.rfft(x, n, axis=axis), scipy.fft.rfft(x, n, axis=axis)
    assert ours.dtype == theirs.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    assert ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()
    m = x.shape[axis] if n is None else n
    back, back_scipy = fft.irfft(ours, m, axis=axis), scipy.fft.irfft(theirs, m, axis=axis)
    assert back.dtype == back_scipy.dtype and back.tobytes() == back_scipy.tobytes()
    assert back.shape[axis] == m
    even = fft.irfft(ours, axis=axis)  # no n: 2 * (points - 1)
    assert even.tobytes() == scipy.fft.irfft(theirs, axis=axis).tobytes()
    if n is None or n >= x.shape[axis]:  # the round trip gives the signal back (zero-padded)
        want = np.zeros(back.shape, dtype)
        want[tuple(slice(0, s) for s in x.shape)] = x
        np.testing.assert_allclose(back, want, atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_receives_scipys_values_in_slices_of_a_bigger_array(dtype):
    """``out=``: rows of a preallocated array, filled slice by slice, hold scipy.fft's values bit for bit."""
    x = _signal((300, 1440), dtype, seed=3)  # the gate's 44.1 kHz frame size
    spec = np.full((300, 721), np.nan, np.complex64 if dtype == np.float32 else np.complex128)
    for c0 in range(0, 300, 128):  # last slice shorter, as the gate's chunks
        got = fft.rfft(x[c0 : c0 + 128], axis=-1, out=spec[c0 : c0 + 128])
        assert np.shares_memory(got, spec)
    assert spec.tobytes() == scipy.fft.rfft(x, axis=-1).tobytes()
    back = np.full((300, 1440), np.nan, dtype)
    for c0 in range(0, 300, 128):
        fft.irfft(spec[c0 : c0 + 128], 1440, axis=-1, out=back[c0 : c0 + 128])
    assert back.tobytes() == scipy.fft.irfft(spec, 1440, axis=-1).tobytes()


def test_inputs_as_scipy_takes_them():
    ints = np.arange(64) % 7
    assert fft.rfft(ints).tobytes() == scipy.fft.rfft(ints).tobytes()  # integers: float64
    half = _signal(64, np.float16)
    assert fft.rfft(half).dtype == np.complex64
    assert fft.rfft(half).tobytes() == scipy.fft.rfft(half).tobytes()
    swapped = _signal(64, ">f4")
    assert fft.rfft(swapped).tobytes() == scipy.fft.rfft(swapped).tobytes()
    strided = _signal((8, 128), np.float32)[:, ::2]
    assert fft.rfft(strided, axis=0).tobytes() == scipy.fft.rfft(strided, axis=0).tobytes()
    spec = scipy.fft.rfft(_signal(100, np.float64))
    assert fft.irfft(spec, 99).tobytes() == scipy.fft.irfft(spec, 99).tobytes()  # odd output length
    real = _signal(33, np.float64)
    assert fft.irfft(real).tobytes() == scipy.fft.irfft(real).tobytes()  # a real "spectrum"


def test_bad_inputs_raise_as_in_scipy():
    with pytest.raises(TypeError, match="real"):
        fft.rfft(np.ones(8, np.complex64))
    with pytest.raises(ValueError, match="data points"):
        fft.rfft(np.ones(0, np.float32))
    with pytest.raises(ValueError, match="data points"):
        fft.rfft(np.ones(8, np.float32), 0)
    with pytest.raises(ValueError, match="data points"):
        fft.irfft(np.ones(1, np.complex64))


@pytest.mark.parametrize("real", [True, False])
def test_next_fast_len_equals_scipy(real):
    sizes = [1, 2, 7, 11, 97, 881, 882, 1001, 1764, 2205, 4097, 65537]
    assert [fft.next_fast_len(n, real) for n in sizes] == [scipy.fft.next_fast_len(n, real) for n in sizes]


def test_a_check_imports_no_scipy_fft_linalg_or_special():
    # Start-up of `voiceprep check`: scipy.fft (with scipy.special) and scipy.linalg (numba's BLAS check)
    # are 0.2-0.3 s of CPU; the model-free stages need one compiled module of each. The clip is denoised
    # and measured by the numba kernels (their first dispatch does the BLAS check). DNSMOS (the [mos]
    # extra) is off: it imports scipy.fft and scipy.signal for its model.
    code = (
        "import sys, numpy as np\n"
        "from prep.clip import Clip\n"
        "from prep.run.profiles import get_profile\n"
        "from prep.run.pipeline import run_stages\n"
        "rate = 16000; t = np.arange(3 * rate) / rate\n"
        "x = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.abs(t - 1.5) < 0.8)"
        " + 0.003 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)[None]\n"
        "clip = Clip(id='c', source='c', source_sha256='', speaker='s', sample_rate=rate, audio=x)\n"
        "import dataclasses as dc\n"
        "stages = [dc.replace(s, mos=False) if 'mos' in {f.name for f in dc.fields(s)} else s\n"
        "          for s in get_profile('fish').stages if s.name not in ('transcribe', 'voice', 'diarise')]\n"
        "out = run_stages(clip, stages)\n"
        "from numba.np.arraymath import _HAVE_BLAS\n"
        "print(sorted(m for m in sys.modules if m.startswith(('scipy.fft', 'scipy.linalg', 'scipy.special'))))\n"
        "print(_HAVE_BLAS, len(out) > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, ok = done.stdout.strip().splitlines()
    assert modules == "[]"  # both loaded alone: pocketfft privately, cython_blas only for numba's check
    assert ok == "True True"


def test_scipy_imported_later_works_as_usual():
    code = (
        "import sys\n"
        "from prep.dsp import fft\n"
        "from prep.kernels import loudness\n"
        "import scipy.fft, scipy.linalg, scipy.linalg.cython_blas\n"
        "import numpy as np\n"
        "a = np.arange(16.0).reshape(4, 4) + 5 * np.eye(4)\n"
        "x = np.random.default_rng(1).standard_normal(96).astype(np.float32)\n"
        "print(np.allclose(scipy.linalg.solve(a, a), np.eye(4)))\n"
        "print(scipy.fft.rfft(x).tobytes() == fft.rfft(x).tobytes())\n"
        "print(scipy.linalg.cython_blas is sys.modules['scipy.linalg.cython_blas'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"] * 3
