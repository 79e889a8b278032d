"""Signal analysis: spectral helpers, voice activity detection, loudness metering and the quality estimators.

Everything here measures; nothing changes a clip.  The numba kernels live in :mod:`prep.kernels`.
"""
