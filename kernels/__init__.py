"""Numba-accelerated DSP kernels, installed as :mod:`prep.kernels`.

Only this package imports numba.  Each kernel is ``@njit(cache=True,
nogil=True)`` over contiguous arrays and validates nothing: its wrapper in
:mod:`prep` validates, allocates and documents.
"""
