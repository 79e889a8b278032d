"""Adapter to :func:`prep.dsp.vad.speech_regions` across its two signatures.

The VAD is being changed from ``speech_regions(audio, sample_rate, ...)`` to
``speech_regions(audio, *, sample_rate=...)``; this calls it with the keyword
when the installed version accepts it, positionally otherwise, so
:mod:`prep.voice` works on both sides of that change.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from ..dsp import vad as _vad

__all__ = ["speech_regions"]


@functools.cache
def _takes_keyword() -> bool:
    try:
        params = inspect.signature(_vad.speech_regions).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins / C functions
        return False
    p = params.get("sample_rate")
    return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


def speech_regions(audio: np.ndarray, *, sample_rate: int, **kwargs) -> list[tuple[float, float]]:
    """Speech regions of mono ``audio`` in seconds, whatever the VAD's signature.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,)
        Mono audio.
    sample_rate : int
        Rate of ``audio`` in Hz.
    **kwargs
        Passed on (``min_speech_s``, ``min_silence_s``, ``pad_s``...).

    Returns
    -------
    list of (start_s, end_s)
    """
    if _takes_keyword():
        return list(_vad.speech_regions(audio, sample_rate=sample_rate, **kwargs))
    return list(_vad.speech_regions(audio, sample_rate, **kwargs))  # pragma: no cover - old signature
