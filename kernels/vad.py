"""webrtcvad's frame loop, compiled: level-normalised int16 frames through its C ``WebRtcVad_Process``.

Wrapped and documented by :func:`prep.dsp.vad.vad_frames`, which hands it the ``VadInst*`` of a
``webrtcvad.Vad`` it keeps alive (its Python loop over webrtcvad's ``process``, or
``Vad.is_speech``, is the twin, ``tests/test_vad.py``); trusts its inputs and validates nothing.

The kernel calls the C function by a symbol name, which numba's cache keeps (a ctypes function
pointer would be baked into the code as an address, and numba refuses to cache that).  At import
this module tells LLVM the address of that name in webrtcvad's extension module
(``_webrtcvad*.so``, found with ctypes); :data:`AVAILABLE` says whether that worked.  Where it
did not (a build of webrtcvad without the symbol), the kernel must never be called: linking
code with an unresolved symbol aborts the process.
"""

from __future__ import annotations

import ctypes
import importlib.util

import numpy as np
from llvmlite import binding
from numba import njit, types

from . import _target  # noqa: F401 - numba's CPU target without all of scipy.linalg (see there)

__all__ = ["AVAILABLE", "to_pcm", "webrtc_flags"]

_SYMBOL = "prep_kernels_WebRtcVad_Process"  # our name for it: nothing else in the process defines it


def _bind() -> bool:
    """Map :data:`_SYMBOL` to ``WebRtcVad_Process`` of the installed ``_webrtcvad`` extension."""
    try:
        spec = importlib.util.find_spec("_webrtcvad")
        if spec is None or not spec.origin:
            return False
        address = ctypes.cast(ctypes.CDLL(spec.origin).WebRtcVad_Process, ctypes.c_void_p).value
    except (AttributeError, ImportError, OSError, ValueError):
        return False
    if not address:
        return False
    binding.add_symbol(_SYMBOL, address)
    return True


#: Whether :func:`webrtc_flags` may be called (webrtcvad's C function was found).
AVAILABLE = _bind()

# int WebRtcVad_Process(VadInst* handle, int fs, const int16_t* frame, size_t frame_length); the handle is
# passed as a pointer-sized integer (same register and width as a pointer in the C calling convention).
_process = types.ExternalFunction(_SYMBOL, types.intc(types.intp, types.intc, types.CPointer(types.int16), types.intp))


@njit(cache=True, nogil=True)
def to_pcm(row, gain, pcm):  # pragma: no cover - compiled
    """``pcm[:] = clip(row * gain, -32768, 32767).astype(int16)``, as NumPy computes it.

    row (L,) float32; gain float32; pcm (L,) int16.  The product is float32, the cast truncates;
    NaN gives 0, as NumPy's cast does on x86-64 and arm64.
    """
    lo = np.float32(-32768.0)
    hi = np.float32(32767.0)
    for j in range(row.shape[0]):
        v = row[j] * gain
        if v != v:
            pcm[j] = 0
        elif v < lo:
            pcm[j] = -32768
        elif v > hi:
            pcm[j] = 32767
        else:
            pcm[j] = np.int16(v)


@njit(cache=True, nogil=True)
def webrtc_flags(frames, rows, gain, handle, sample_rate, out):  # pragma: no cover - compiled
    """webrtcvad's decision on each of the first ``rows`` frames, level-normalised as :func:`to_pcm`.

    frames (N, L) float32 C-contiguous; rows <= N; gain float32; handle the ``VadInst*`` of a
    ``webrtcvad.Vad`` (an int); sample_rate of the frames (Hz); out (>= rows,) bool.
    ``out[i] = WebRtcVad_Process(handle, sample_rate, to_pcm(frames[i]), L) == 1``, in order (webrtcvad
    adapts to what it has seen).  Returns 0, or -1 when webrtcvad reported an error (bad rate or
    frame length, uninitialised handle), leaving the rows from there on unset.
    """
    length = frames.shape[1]
    pcm = np.empty(length, np.int16)
    for i in range(rows):
        to_pcm(frames[i], gain, pcm)
        r = _process(handle, sample_rate, pcm.ctypes, length)
        if r < 0:
            return -1
        out[i] = r == 1
    return 0
