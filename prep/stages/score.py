"""The ``score`` stage and the score policy: metrics of the processed clip, 0–100 score, verdict.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..clip import Clip
from ..dsp.estimators import measure_quality
from ..errors import ConfigError
from ..findings import Finding, finding
from ..metrics import source_metrics, source_name

__all__ = ["Score", "judge", "quality_score"]


# -- score and verdict -------------------------------------------------------------
def _ramp(value: float | None, good: float, bad: float, points: float) -> float:
    """0 points at ``good`` (or better), ``points`` at ``bad`` (or worse), linear between."""
    if value is None:
        return 0.0
    frac = (value - good) / (bad - good)
    return points * min(1.0, max(0.0, frac))


#: Score penalty curves: metric -> (value with no penalty, value with full penalty, points).
PENALTIES: dict[str, tuple[float, float, float]] = {
    "snr_db": (35.0, 5.0, 40.0),
    "clipping_log10": (-5.0, -2.0, 30.0),  # log10(clipping_ratio): 0.001 % .. 1 %
    "bandwidth_hz": (11000.0, 3500.0, 25.0),
    "reverb_s": (0.3, 1.0, 25.0),
    "tonal_ratio": (0.3, 0.9, 20.0),
    "speech_ratio": (0.7, 0.2, 20.0),
    "duration_s": (10.0, 2.0, 15.0),
    "dc_offset_abs": (0.005, 0.05, 5.0),
    # DNSMOS OVRL (the [mos] extra; nothing when it did not run): clean read speech 3.2-3.46, the same
    # speech in cafe/kitchen/restaurant/white noise: median 2.76 at 20 dB SNR, 2.16 at 10 dB, 1.63 at
    # 5 dB (benchmarks/dnsmos_score.py).
    "dnsmos_ovrl": (3.3, 2.0, 20.0),
}


def quality_score(metrics: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """The 0–100 quality score and the points each problem cost.

    ``100`` minus penalties that grow linearly between a harmless and a bad
    value (:data:`PENALTIES`): SNR 35 → 5 dB (40 points), clipped samples
    0.001 % → 1 % on a log scale (30), bandwidth 11 → 3.5 kHz (25), decay
    time 0.3 → 1.0 s (25), tonal background 0.3 → 0.9 (20), speech ratio
    0.7 → 0.2 (20), duration 10 → 2 s (15), DC offset 0.005 → 0.05 (5),
    DNSMOS OVRL 3.3 → 2.0 (20; only with the ``[mos]`` extra).
    Source (``source_*``) values are used where :class:`Measure` recorded
    them.  Missing metrics cost nothing, so a run without DNSMOS scores on
    the model-free metrics alone.

    Parameters
    ----------
    metrics : Mapping
        A clip's metrics.

    Returns
    -------
    score : float
        In [0, 100], rounded to 0.1.
    penalties : dict of str to float
        Points lost per metric (only those > 0).
    """
    src = source_metrics(metrics)
    clip_ratio = src["clipping_ratio"]
    values = {
        "snr_db": src["snr_db"],
        "clipping_log10": math.log10(max(clip_ratio, 1e-12)) if clip_ratio is not None else None,
        "bandwidth_hz": src["bandwidth_hz"],
        "reverb_s": src["reverb_s"],
        "tonal_ratio": src["tonal_ratio"],
        "speech_ratio": src["speech_ratio"],
        "duration_s": src["duration_s"],
        "dc_offset_abs": abs(src["dc_offset"]) if src["dc_offset"] is not None else None,
        "dnsmos_ovrl": src["dnsmos_ovrl"],
    }
    penalties = {}
    for name, (good, bad, points) in PENALTIES.items():
        lost = _ramp(values[name], good, bad, points)
        if lost > 0:
            penalties[name] = round(lost, 1)
    score = max(0.0, 100.0 - sum(penalties.values()))
    return round(score, 1), penalties


def judge(metrics: Mapping[str, Any], rules: Score) -> tuple[Finding, ...]:
    """Findings for a clip's metrics under the thresholds of ``rules``.

    Parameters
    ----------
    metrics : Mapping
        A clip's metrics (source ``source_*`` values are preferred where present).
    rules : Score
        The thresholds.

    Returns
    -------
    tuple of Finding
        Rejections first, then warnings; empty for a clip with nothing wrong.
        :func:`prep.findings.verdict_of` makes the verdict of them.
    """
    src = source_metrics(metrics)
    found: list[Finding] = []

    def first(name: str, *checks: tuple[str, float | None, Callable[[float, float], bool]]) -> None:
        """Add the first of ``checks`` (code, threshold, is it bad) the metric ``name`` fails."""
        value = src[name]
        if value is None:
            return
        for code, threshold, bad in checks:
            if threshold is not None and bad(value, threshold):
                found.append(finding(code, metric=name, value=value, threshold=threshold))
                return

    first(
        "duration_s",
        ("duration.too_short", rules.min_duration_s, operator.lt),
        ("duration.short", rules.warn_duration_s, operator.lt),
        ("duration.long", rules.max_duration_s, operator.gt),
    )
    first(
        "speech_ratio",
        ("speech.mostly_silence", rules.min_speech_ratio, operator.lt),
        ("speech.long_pauses", rules.warn_speech_ratio, operator.lt),
    )
    first("snr_db", ("snr.too_low", rules.min_snr_db, operator.lt), ("snr.low", rules.warn_snr_db, operator.lt))
    first(
        "clipping_ratio",
        ("clipping.heavy", rules.max_clipping_ratio, operator.gt),
        ("clipping.light", rules.warn_clipping_ratio, operator.gt),
    )
    first(
        "bandwidth_hz",
        ("bandwidth.muffled", rules.min_bandwidth_hz, _positive_below),
        ("bandwidth.narrow", rules.warn_bandwidth_hz, _positive_below),
    )
    first(
        "reverb_s",
        ("reverb.very_high", rules.max_reverb_s, operator.gt),
        ("reverb.high", rules.warn_reverb_s, operator.gt),
    )
    first("tonal_ratio", ("tonal.background", rules.warn_tonal_ratio, operator.gt))
    first("dc_offset", ("dc.offset", rules.warn_dc_offset, lambda v, t: abs(v) > t))
    first(
        "dnsmos_ovrl",
        ("dnsmos.too_low", rules.min_dnsmos_ovrl, operator.lt),
        ("dnsmos.low", rules.warn_dnsmos_ovrl, operator.lt),
    )
    first("dnsmos_bak", ("dnsmos.noisy", rules.warn_dnsmos_bak, operator.lt))
    return tuple(sorted(found, key=lambda f: f.severity != "reject"))


def _positive_below(value: float, threshold: float) -> bool:
    """Below the threshold but positive (a bandwidth of 0 is "not measured")."""
    return 0 < value < threshold


# -- stage -------------------------------------------------------------------------
#: Metrics :meth:`Score.measure` leaves alone when already recorded (``duration_s`` is always refreshed).
QUALITY_METRICS = (
    "speech_s",
    "speech_ratio",
    "snr_db",
    "clipping_ratio",
    "clipped_runs",
    "dc_offset",
    "bandwidth_hz",
    "reverb_s",
    "tonal_ratio",
    "dnsmos_ovrl",
)
#: Properties of the recording (room, background, source bandwidth) that :class:`Score` does not
#: measure again when :class:`Measure` recorded them as ``source_*``.
RECORDING_METRICS = ("bandwidth_hz", "reverb_s", "tonal_ratio")


def _check_order(low_name: str, low: float, high_name: str, high: float) -> None:
    if low > high:
        raise ConfigError(f"{low_name}={low!r} must not exceed {high_name}={high!r}")


@dataclass(frozen=True)
class Score:
    """Pipeline stage: measure the processed clip, score it 0–100 and give the verdict.

    Computes the metrics of :func:`measure_quality` not already recorded
    (nor, for :data:`RECORDING_METRICS`, recorded from the source by
    :class:`Measure`), the output loudness when no :class:`~prep.stages.loudness.Loudness` stage ran,
    ``score`` and ``score_penalties``, then the verdict by :func:`judge`.
    Thresholds (a value beyond ``min_*``/``max_*`` rejects, beyond
    ``warn_*`` warns):

    Attributes
    ----------
    min_duration_s, warn_duration_s : float
        Clip length; Fish Audio asks for at least 10 s per sample.
    max_duration_s : float or None
        Warn above this length (``None``: no limit).
    min_speech_ratio, warn_speech_ratio : float
        Share of the clip that is speech.
    min_snr_db, warn_snr_db : float
        Source SNR.
    max_clipping_ratio, warn_clipping_ratio : float
        Share of samples on clipped plateaus.
    min_bandwidth_hz, warn_bandwidth_hz : float
        Effective bandwidth (below the warning: phone / low-rate source).
    max_reverb_s, warn_reverb_s : float
        Decay-time estimate.
    warn_tonal_ratio : float
        Music / hum indicator.
    warn_dc_offset : float
        DC offset, fraction of full scale.
    min_dnsmos_ovrl, warn_dnsmos_ovrl : float
        DNSMOS overall MOS, 1–5 (only with the ``[mos]`` extra installed; the
        source value where :class:`~prep.stages.measure.Measure` recorded it).
        Read speech in everyday noise falls below 2.0 from 5–10 dB SNR
        (the ``min_snr_db`` default is 10 dB), below 2.5 from 10–20 dB
        (``benchmarks/dnsmos_score.py``).  ``0`` turns a check off.
    warn_dnsmos_bak : float
        DNSMOS background quality, 1–5: below it the background is audibly
        noisy (3.0 is the median at 20 dB SNR, the ``warn_snr_db`` default;
        it also hears babble or clatter the SNR estimate takes for speech).
    mos : bool
        Run DNSMOS on the clip when ``speechmos`` is installed.
    """

    name: ClassVar[str] = "score"
    changes: ClassVar[frozenset[str]] = frozenset()  # metrics and verdict only (see run_stages)
    min_duration_s: float = 2.0
    warn_duration_s: float = 10.0
    max_duration_s: float | None = None
    min_speech_ratio: float = 0.3
    warn_speech_ratio: float = 0.6
    min_snr_db: float = 10.0
    warn_snr_db: float = 20.0
    max_clipping_ratio: float = 0.01
    warn_clipping_ratio: float = 0.001
    min_bandwidth_hz: float = 2000.0
    warn_bandwidth_hz: float = 7000.0
    max_reverb_s: float = 1.5
    warn_reverb_s: float = 0.45
    warn_tonal_ratio: float = 0.5
    warn_dc_offset: float = 0.02
    min_dnsmos_ovrl: float = 2.0
    warn_dnsmos_ovrl: float = 2.5
    warn_dnsmos_bak: float = 3.0
    mos: bool = True

    def __post_init__(self) -> None:
        _check_order("min_duration_s", self.min_duration_s, "warn_duration_s", self.warn_duration_s)
        if self.max_duration_s is not None:
            _check_order("warn_duration_s", self.warn_duration_s, "max_duration_s", self.max_duration_s)
        _check_order("min_speech_ratio", self.min_speech_ratio, "warn_speech_ratio", self.warn_speech_ratio)
        _check_order("min_snr_db", self.min_snr_db, "warn_snr_db", self.warn_snr_db)
        _check_order("warn_clipping_ratio", self.warn_clipping_ratio, "max_clipping_ratio", self.max_clipping_ratio)
        _check_order("min_bandwidth_hz", self.min_bandwidth_hz, "warn_bandwidth_hz", self.warn_bandwidth_hz)
        _check_order("warn_reverb_s", self.warn_reverb_s, "max_reverb_s", self.max_reverb_s)
        _check_order("min_dnsmos_ovrl", self.min_dnsmos_ovrl, "warn_dnsmos_ovrl", self.warn_dnsmos_ovrl)
        for field in ("min_dnsmos_ovrl", "warn_dnsmos_ovrl", "warn_dnsmos_bak"):
            value = getattr(self, field)
            if not 0.0 <= value <= 5.0:
                raise ConfigError(f"{field} is a MOS in [0, 5] (0: no check), got {value!r}")
        if self.min_duration_s < 0 or self.min_speech_ratio < 0 or self.warn_clipping_ratio < 0:
            raise ConfigError(
                "min_duration_s, min_speech_ratio and warn_clipping_ratio must be >= 0, got "
                f"{self.min_duration_s!r}, {self.min_speech_ratio!r}, {self.warn_clipping_ratio!r}"
            )

    def measure(self, clip: Clip) -> dict[str, Any]:
        """Metrics of the clip's audio not already in ``clip.metrics``."""
        audio = clip.require_audio()
        known = {k for k, v in clip.metrics.items() if v is not None}
        skip = known & set(QUALITY_METRICS)  # e.g. speech_s from Trim/Slice describes the kept audio
        # The room, the background music and the source bandwidth are properties of the recording that
        # processing does not change: measured on the clip's span of the source, by Measure.
        skip |= {name for name in RECORDING_METRICS if source_name(name) in known}
        found = measure_quality(audio, sample_rate=clip.sample_rate, skip=skip, mos=self.mos, speech=clip.speech)
        if "output_lufs" not in known or "output_true_peak_dbtp" not in known:
            from ..dsp.loudness import integrated_loudness, true_peak

            found.setdefault("output_lufs", integrated_loudness(audio, sample_rate=clip.sample_rate))
            found.setdefault("output_true_peak_dbtp", true_peak(audio, sample_rate=clip.sample_rate))
        return found

    def apply(self, clip: Clip) -> Clip:
        scored = clip.with_metrics(**self.measure(clip))
        score, penalties = quality_score(scored.metrics)
        scored = scored.with_metrics(score=score, score_penalties=penalties)
        return scored.with_findings(*judge(scored.metrics, self))
