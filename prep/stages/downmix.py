"""Phase-aware downmix to mono.

Plain averaging fails two ways on real recordings: a dead channel halves
the level, and a polarity-inverted channel cancels the speech to silence.
:func:`measure_channels` finds both; :func:`downmix` uses the measurement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..audio import as_audio
from ..clip import Clip, SourceAudio
from ..errors import ConfigError
from ..findings import Finding, finding

__all__ = [
    "ChannelReport",
    "channel_report",
    "measure_channels",
    "mix_weights",
    "downmix",
    "downmix_metrics",
    "downmix_findings",
    "Downmix",
]

_EPS = 1e-20


@dataclass(frozen=True)
class ChannelReport:
    """What :func:`measure_channels` found.

    Attributes
    ----------
    rms_db : tuple of float
        RMS level of each channel in dBFS (``-inf`` for digital silence).
    dead : tuple of int
        Channels more than ``dead_channel_db`` below the loudest one.
    inverted : tuple of int
        Live channels whose correlation with the reference channel is below
        ``-inverted_corr``; they are flipped before averaging.
    correlation : tuple of float
        Pearson correlation of each channel with the reference channel.
    reference : int
        The first channel within 6 dB of the loudest: the output keeps its
        polarity.
    """

    rms_db: tuple[float, ...]
    dead: tuple[int, ...]
    inverted: tuple[int, ...]
    correlation: tuple[float, ...]

    reference: int = 0


def channel_report(
    gram: np.ndarray, sums: np.ndarray, n: int, *, dead_channel_db: float = 40.0, inverted_corr: float = 0.3
) -> ChannelReport:
    """Decide dead and inverted channels from second-order statistics.

    Lets the decision be made from statistics accumulated block by block
    (long files) as well as from a whole array (:func:`measure_channels`).

    Parameters
    ----------
    gram : np.ndarray, float64, shape (channels, channels)
        ``x @ x.T`` summed over all samples.
    sums : np.ndarray, float64, shape (channels,)
        Sum of each channel's samples.
    n : int
        Number of samples per channel.
    dead_channel_db, inverted_corr : float
        See :func:`measure_channels`.
    """
    n = max(int(n), 1)
    power = np.diag(gram) / n
    with np.errstate(divide="ignore"):
        rms_db = 10.0 * np.log10(power)
    loudest = float(np.max(rms_db))
    ref = int(np.flatnonzero(rms_db >= loudest - 6.0)[0]) if np.isfinite(loudest) else 0
    floor = loudest - dead_channel_db
    dead = tuple(int(c) for c in range(gram.shape[0]) if c != ref and not rms_db[c] > floor)
    mean = sums / n
    cov = gram[:, ref] - n * mean * mean[ref]  # centered cross products with the reference
    var = np.maximum(np.diag(gram) - n * mean * mean, 0.0)
    corr = cov / np.maximum(np.sqrt(var * var[ref]), _EPS)
    inverted = tuple(int(c) for c in range(gram.shape[0]) if c not in dead and corr[c] < -inverted_corr)
    return ChannelReport(
        rms_db=tuple(float(v) for v in rms_db),
        dead=dead,
        inverted=inverted,
        correlation=tuple(float(v) for v in corr),
        reference=ref,
    )


def measure_channels(audio: np.ndarray, *, dead_channel_db: float = 40.0, inverted_corr: float = 0.3) -> ChannelReport:
    """Measure per-channel level and inter-channel polarity.

    Parameters
    ----------
    audio : np.ndarray, shape (channels, samples)
    dead_channel_db : float
        A channel this many dB below the loudest is treated as dead.
    inverted_corr : float
        A channel whose correlation with the reference is below ``-inverted_corr``
        is treated as polarity-inverted.

    Returns
    -------
    ChannelReport
    """
    x = as_audio(audio)
    if x.ndim == 1:
        x = x[None, :]
    x64 = x.astype(np.float64)
    return channel_report(
        # einsum, not BLAS: the same sums in the same order whatever the thread count (parallel == serial)
        np.einsum("in,jn->ij", x64, x64), x64.sum(axis=1), x.shape[1],
        dead_channel_db=dead_channel_db, inverted_corr=inverted_corr,
    )


def mix_weights(report: ChannelReport) -> np.ndarray:
    """Per-channel mixing weights: 0 for dead, -1/L for inverted, 1/L otherwise.

    Returns
    -------
    np.ndarray, float32, shape (channels,)
    """
    channels = len(report.rms_db)
    live = [c for c in range(channels) if c not in report.dead]
    weights = np.zeros(channels, dtype=np.float32)
    weights[live] = 1.0 / len(live)
    weights[list(report.inverted)] *= -1.0
    return weights


def downmix(
    audio: np.ndarray, *, dead_channel_db: float = 40.0, inverted_corr: float = 0.3
) -> tuple[np.ndarray, ChannelReport]:
    """Mix to mono without cancelling an inverted channel or diluting with a dead one.

    Dead channels are dropped, inverted channels are flipped, and the live
    channels are averaged.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    dead_channel_db, inverted_corr : float
        See :func:`measure_channels`.

    Returns
    -------
    mono : np.ndarray, float32, shape (samples,)
    report : ChannelReport
    """
    if dead_channel_db <= 0:
        raise ConfigError(f"dead_channel_db must be > 0, got {dead_channel_db!r}")
    if not 0 < inverted_corr < 1:
        raise ConfigError(f"inverted_corr must be in (0, 1), got {inverted_corr!r}")
    x = as_audio(audio)
    if x.ndim == 1:
        return x, ChannelReport((float("nan"),), (), (), (1.0,))
    report = measure_channels(x, dead_channel_db=dead_channel_db, inverted_corr=inverted_corr)
    mono = np.einsum("c,cn->n", mix_weights(report), x)
    return np.ascontiguousarray(mono, dtype=np.float32), report


def downmix_metrics(report: ChannelReport) -> dict[str, Any]:
    """The metrics the downmix stage records for a multichannel input."""
    n_live = len(report.rms_db) - len(report.dead)
    if n_live == 1:
        mode = "single_live_channel"
    elif report.inverted:
        mode = "polarity_corrected"
    else:
        mode = "average"
    return {
        "downmix_mode": mode,
        "channel_rms_db": list(report.rms_db),
        "channel_correlation": list(report.correlation),
        "dead_channels": list(report.dead),
        "inverted_channels": list(report.inverted),
    }


def downmix_findings(report: ChannelReport) -> list[Finding]:
    """Informational findings describing a non-trivial downmix."""
    found = []
    if report.inverted:
        found.append(finding("downmix.inverted", metric="inverted_channels", channels=list(report.inverted)))
    if report.dead:
        found.append(finding("downmix.dead_channel", metric="dead_channels", channels=list(report.dead)))
    return found


@dataclass(frozen=True)
class Downmix:
    """Pipeline stage: phase-aware downmix (see :func:`downmix`).

    The mono result is also kept as the clip's
    :attr:`~prep.clip.Clip.source_audio` (not copied, not serialised), which
    :class:`~prep.stages.measure.Measure` later reads each clip's span from.
    """

    name: ClassVar[str] = "downmix"
    changes: ClassVar[frozenset[str]] = frozenset({"audio"})  # speech stays where it was (see run_stages)
    dead_channel_db: float = 40.0
    inverted_corr: float = 0.3

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        if audio.ndim == 1 or audio.shape[0] == 1:
            mono = np.ascontiguousarray(audio.reshape(-1))
            source = SourceAudio(mono, clip.sample_rate, float(clip.span_s[0]))
            return dataclasses.replace(clip, audio=mono, source_audio=source).with_metrics(downmix_mode="mono")
        mono, rep = downmix(audio, dead_channel_db=self.dead_channel_db, inverted_corr=self.inverted_corr)
        mixed = dataclasses.replace(clip, audio=mono, source_audio=SourceAudio(mono, clip.sample_rate, clip.span_s[0]))
        return mixed.with_metrics(**downmix_metrics(rep)).with_findings(
            *downmix_findings(rep)
        )
