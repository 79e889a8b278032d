"""Reading a clip's metrics: finite values, the first of several names, source-over-output.

Light on purpose (no SciPy): the report writer, selection and scoring all
read metrics through these, so they agree on which value stands for a clip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["finite", "pick", "source_metrics"]


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pick(metrics: Mapping[str, Any], *names: str) -> float | None:
    """The first finite metric among ``names``."""
    for name in names:
        value = finite(metrics.get(name))
        if value is not None:
            return value
    return None


def source_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The values the score, the verdict and the report judge a clip on.

    The source quality (``input_*``, recorded by :class:`prep.stages.measure.Measure`
    before processing) where measured, else the output's; clipping is the
    worse of the two.

    Parameters
    ----------
    metrics : Mapping of str to object
        A clip's metrics, as in :attr:`prep.clip.Clip.metrics` or a manifest
        line (values that are not finite numbers count as missing).

    Returns
    -------
    dict of str to float or None
        ``duration_s``, ``speech_ratio``, ``snr_db``, ``clipping_ratio``,
        ``bandwidth_hz``, ``reverb_s``, ``tonal_ratio``, ``dc_offset`` and
        ``dnsmos_ovrl``; None where not measured.
    """
    clip_in = pick(metrics, "input_clipping_ratio")
    clip_out = pick(metrics, "clipping_ratio")
    return {
        "duration_s": pick(metrics, "duration_s"),
        "speech_ratio": pick(metrics, "speech_ratio"),
        "snr_db": pick(metrics, "input_snr_db", "snr_db"),
        "clipping_ratio": max((v for v in (clip_in, clip_out) if v is not None), default=None),
        "bandwidth_hz": pick(metrics, "input_bandwidth_hz", "bandwidth_hz"),
        "reverb_s": pick(metrics, "input_reverb_s", "reverb_s"),
        "tonal_ratio": pick(metrics, "input_tonal_ratio", "tonal_ratio"),
        "dc_offset": pick(metrics, "input_dc_offset", "dc_offset"),
        "dnsmos_ovrl": pick(metrics, "dnsmos_ovrl"),
    }
