"""Rank kernel of the quality estimators: spectral peaks above their neighbourhood's median.

Wrapped and documented by :func:`prep.dsp.filters.prominent` (its NumPy path is the twin,
``tests/test_filters_kernel.py``); trusts its inputs (C-contiguous float32, a bool output of the
same shape) and validates nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _target  # noqa: F401 - numba's CPU target without all of scipy.linalg (see there)

__all__ = ["prominent_rows"]


@njit(cache=True, nogil=True)
def prominent_rows(a, size, prom_db, out):  # pragma: no cover - compiled
    """``out[i, t] = #{j < size : a[i, t] - a[clamp(i + j - size // 2), t] >= prom_db} >= size // 2 + 1``.

    a (N, M) float32; size int >= 1; prom_db float32; out (N, M) bool.  The differences and the
    comparison are in float32, as NumPy computes them for float32 arrays (no fast-math: exact).
    """
    n, m = a.shape
    before = size // 2
    need = before + 1
    count = np.empty(m, np.int32)
    for i in range(n):
        count[:] = 0
        for j in range(size):
            k = min(max(i + j - before, 0), n - 1)
            for t in range(m):
                count[t] += a[i, t] - a[k, t] >= prom_db
        for t in range(m):
            out[i, t] = count[t] >= need
