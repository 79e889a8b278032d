"""The compiled peak-prominence kernel (prep.kernels.filters) against its NumPy twin and scipy's median filter."""

from __future__ import annotations

import numpy as np
import pytest
from prep.kernels.filters import prominent_rows

from prep.dsp.filters import _prominent_numpy, prominent


@pytest.mark.parametrize("size", [1, 2, 3, 8, 19, 20, 40])
def test_kernel_equals_numpy_twin_on_float32(size):
    rng = np.random.default_rng(100 + size)
    for shape in ((30, 17), (254, 60), (3, 11), (1, 5)):
        a = (rng.standard_normal(shape) * 12.0).astype(np.float32)
        a[rng.random(shape) < 0.2] = np.float32(1.5)  # ties
        a[rng.random(shape) < 0.1] = np.float32(-1.5)  # differences of exactly 3.0
        a = np.round(a, 1).astype(np.float32)  # differences landing on prom_db exactly
        a[0, 0] = -np.inf
        a[-1, -1] = np.nan
        for prom_db in (0.0, 3.0, 8.0, np.float32(8.0)):
            out = np.empty(a.shape, np.bool_)
            prominent_rows(a, size, np.float32(prom_db), out)
            with np.errstate(invalid="ignore"):  # -inf - -inf, nan: False in both
                twin = _prominent_numpy(a, size, np.float32(prom_db))
            np.testing.assert_array_equal(out, twin)
            np.testing.assert_array_equal(prominent(a, size, prom_db), twin)


def test_float32_spectrogram_path_equals_the_median_rule():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    a = np.round(rng.standard_normal((120, 40)) * 6.0, 1).astype(np.float32)
    for size in (5, 19):
        median = ndimage.median_filter(a, size=(size, 1), mode="nearest")
        np.testing.assert_array_equal(prominent(a, size, 8.0), (a - median) >= np.float32(8.0))


def test_prom_db_not_exact_in_float32_keeps_numpys_comparison():
    a = np.array([[0.0], [8.1], [0.0]], np.float32)  # 8.1 in float32 is 8.1000003...
    expected = _prominent_numpy(a, 3, 8.1)  # float32 difference compared with the float64 8.1
    np.testing.assert_array_equal(prominent(a, 3, 8.1), expected)
