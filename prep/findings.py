"""Findings: what a stage found wrong (or worth noting) about a clip, and the verdict they make.

A :class:`Finding` is a small frozen record ``{code, severity, metric, value,
threshold, message}``.  Its ``code`` comes from one documented, stable
vocabulary, :data:`CODES` (listed in the README), which also gives each
code's default severity, its meaning and the template its message is
rendered from.  Stages attach findings to a clip
(:meth:`prep.clip.Clip.with_findings`); the clip's verdict is derived from
them by :func:`verdict_of` and by nothing else.

Messages never contradict their own numbers: :func:`finding` renders the
value and the threshold so that the shown value stands on the same side of
the shown threshold as the real one (digits are added until it does; a
9.6 dB SNR under a 10 dB limit reads "9.6 dB (< 10 dB)", never "10 dB (< 10 dB)").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from .errors import PrepError

__all__ = [
    "CODES",
    "COMPARISONS",
    "SEVERITIES",
    "VERDICTS",
    "Code",
    "Finding",
    "finding",
    "findings_from_record",
    "format_pair",
    "verdict_of",
    "worst_verdict",
]

#: Severities from mildest to worst.  ``info`` never changes a verdict; ``error``
#: means the clip could not be processed.
SEVERITIES = ("info", "warning", "reject", "error")

#: Verdicts from best to worst.
VERDICTS = ("approved", "warning", "rejected", "error")

_VERDICT_OF_SEVERITY = {"info": "approved", "warning": "warning", "reject": "rejected", "error": "error"}
_SEVERITY_OF_VERDICT = {v: s for s, v in _VERDICT_OF_SEVERITY.items()}

#: Comparisons a code's value makes with its threshold: the problem is ``value < threshold``,
#: ``value > threshold``, ``|value| > threshold``, ``value`` outside a bound (below a lower
#: or above an upper one: ``threshold`` is the bound crossed) or ``value != threshold``.
COMPARISONS = ("<", ">", "abs>", "outside", "!=")


@dataclass(frozen=True)
class Code:
    """One entry of the finding vocabulary.

    Attributes
    ----------
    severity : str
        Default severity (one of :data:`SEVERITIES`).
    meaning : str
        One line for the README table.
    template : str
        :meth:`str.format` template of the message.  ``{value}`` and
        ``{threshold}`` are replaced by the rendered numbers, ``{cmp}`` by
        the comparison the value makes (``<`` or ``>``, for ``outside``);
        other fields come from the caller's ``params``.
    compare : str or None
        How ``value`` is judged against ``threshold`` (one of
        :data:`COMPARISONS`), or None when the message compares nothing.
    scale : int
        Power of ten the value and threshold are shown multiplied by
        (``2`` for per cent, ``-3`` for kHz from Hz).
    decimals : int
        Digits after the point the value is shown with at least.
    signed : bool
        Show the value's sign even when positive.
    """

    severity: str
    meaning: str
    template: str
    compare: str | None = None
    scale: int = 0
    decimals: int = 1
    signed: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise PrepError(f"unknown severity {self.severity!r}; expected one of {SEVERITIES}")
        if self.compare is not None and self.compare not in COMPARISONS:
            raise PrepError(f"unknown comparison {self.compare!r}; expected one of {COMPARISONS}")


#: The finding vocabulary: code -> :class:`Code`.  Codes are stable: reports and scripts group by them.
CODES: dict[str, Code] = {
    # -- score stage (prep.stages.score.judge; thresholds: the Score fields) ----------------------
    "duration.too_short": Code(
        "reject", "clip shorter than `min_duration_s`", "too short: {value} s (< {threshold} s)", "<"
    ),
    "duration.short": Code(
        "warning",
        "clip shorter than `warn_duration_s` (Fish Audio asks for 10 s or more)",
        "short: {value} s (< {threshold} s recommended per clip)",
        "<",
    ),
    "duration.long": Code("warning", "clip longer than `max_duration_s`", "long: {value} s (> {threshold} s)", ">"),
    "speech.mostly_silence": Code(
        "reject",
        "speech is less than `min_speech_ratio` of the clip",
        "mostly silence: speech is {value} % of the clip (< {threshold} %)",
        "<",
        scale=2,
        decimals=0,
    ),
    "speech.long_pauses": Code(
        "warning",
        "speech is less than `warn_speech_ratio` of the clip",
        "long pauses: speech is {value} % of the clip (< {threshold} %)",
        "<",
        scale=2,
        decimals=0,
    ),
    "speech.none": Code("reject", "the VAD found no speech at all (`trim`, `slice`)", "no speech detected"),
    "snr.too_low": Code(
        "reject", "source SNR below `min_snr_db`", "too noisy: SNR ≈ {value} dB (< {threshold} dB)", "<", decimals=0
    ),
    "snr.low": Code(
        "warning",
        "source SNR below `warn_snr_db`: audible background noise",
        "background noise: SNR ≈ {value} dB (< {threshold} dB)",
        "<",
        decimals=0,
    ),
    "clipping.heavy": Code(
        "reject",
        "share of clipped samples above `max_clipping_ratio`",
        "heavy clipping: {value} % of samples clipped (> {threshold} %)",
        ">",
        scale=2,
        decimals=2,
    ),
    "clipping.light": Code(
        "warning",
        "share of clipped samples above `warn_clipping_ratio`",
        "clipping: {value} % of samples clipped (> {threshold} %)",
        ">",
        scale=2,
        decimals=3,
    ),
    "bandwidth.muffled": Code(
        "reject",
        "effective bandwidth below `min_bandwidth_hz`",
        "muffled: no content above {value} kHz (< {threshold} kHz)",
        "<",
        scale=-3,
    ),
    "bandwidth.narrow": Code(
        "warning",
        "effective bandwidth below `warn_bandwidth_hz` (phone or low-rate source)",
        "narrowband: audio stops at {value} kHz (phone or low-rate source; < {threshold} kHz)",
        "<",
        scale=-3,
    ),
    "reverb.very_high": Code(
        "reject",
        "decay time above `max_reverb_s`",
        "very reverberant: decay ≈ {value} s (> {threshold} s)",
        ">",
        decimals=2,
    ),
    "reverb.high": Code(
        "warning",
        "decay time above `warn_reverb_s`: the room would be cloned",
        "reverberant: decay ≈ {value} s (> {threshold} s); the room would be cloned",
        ">",
        decimals=2,
    ),
    "tonal.background": Code(
        "warning",
        "tonal indicator above `warn_tonal_ratio`: music or hum in the background",
        "music or hum in the background (tonal indicator {value} > {threshold})",
        ">",
        decimals=2,
    ),
    "dc.offset": Code(
        "warning",
        "DC offset beyond `warn_dc_offset` of full scale",
        "DC offset {value} of full scale (|offset| > {threshold})",
        "abs>",
        decimals=3,
        signed=True,
    ),
    "dnsmos.too_low": Code(
        "reject",
        "DNSMOS overall below `min_dnsmos_ovrl` (only with the `[mos]` extra)",
        "poor quality: DNSMOS overall {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    "dnsmos.low": Code(
        "warning",
        "DNSMOS overall below `warn_dnsmos_ovrl` (only with the `[mos]` extra)",
        "DNSMOS overall {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    "dnsmos.noisy": Code(
        "warning",
        "DNSMOS background quality below `warn_dnsmos_bak`: audible noise (only with the `[mos]` extra)",
        "noisy background: DNSMOS BAK {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    # -- downmix ---------------------------------------------------------------------------------
    "downmix.inverted": Code(
        "info",
        "a polarity-inverted channel was flipped before mixing",
        "channel(s) {channels} polarity-inverted; flipped before mixing",
    ),
    "downmix.dead_channel": Code(
        "info",
        "a silent or dead channel was left out of the mix",
        "channel(s) {channels} silent or dead; ignored in the mix",
    ),
    # -- loudness --------------------------------------------------------------------------------
    "loudness.too_short": Code(
        "warning",
        "shorter than one 400 ms loudness block: level left unchanged",
        "loudness: too short to measure ({value} s < {threshold} s); level unchanged",
        "<",
        decimals=3,
    ),
    "loudness.silent": Code(
        "reject",
        "no 400 ms block above the absolute gate: silent",
        "loudness: silent (no 400 ms block above {threshold} LUFS)",
        decimals=0,
    ),
    "loudness.limited": Code(
        "warning",
        "the true-peak limiter cost more than `max_limiter_lu` of loudness",
        "loudness: true-peak limiter cost {value} LU (> {threshold}) to hold {ceiling_dbtp:g} dBTP "
        "at {target_lufs:g} LUFS",
        ">",
    ),
    "loudness.off_target": Code(
        "warning",
        "the output loudness missed the target",
        "loudness: reached {value} LUFS, target {threshold} LUFS",
        "!=",
        decimals=2,
    ),
    "loudness.over_peak": Code(
        "warning",
        "the output true peak is above the ceiling",
        "loudness: true peak {value} dBTP above the {threshold} dBTP ceiling",
        ">",
        decimals=2,
    ),
    # -- slicing and transcripts -----------------------------------------------------------------
    "slice.no_pause": Code(
        "warning",
        "a slice stays longer than `max_s`: no pause to cut at",
        "slice is {value} s > max_s={threshold}: no pause to cut at",
        ">",
    ),
    "transcript.dropped": Code(
        "warning",
        "the clip was cut into pieces; its transcript cannot be split without alignment and is dropped",
        "transcript dropped: the audio was cut into pieces and a transcript cannot be split without alignment",
    ),
    "transcript.rate": Code(
        "warning",
        "characters per second of speech outside the absolute bounds: the transcript may not match",
        "transcript may not match audio: {value} chars/s of speech ({cmp} {threshold} chars/s)",
        "outside",
    ),
    "transcript.rate_outlier": Code(
        "warning",
        "characters per second far from the speaker's median (robust z-score): the transcript may not match",
        "transcript may not match audio: {rate:.1f} chars/s of speech vs speaker median {median:.1f} "
        "(robust z {value} {cmp} {threshold})",
        "outside",
        signed=True,
    ),
    # -- speech recognition (the `[asr]` extra; prep.stages.transcribe, guards in prep.asr.guards) ------
    # A clip without a user transcript whose ASR text is refused gets the finding as a warning (no text);
    # a clip with one gets it as info (its transcript is kept, unconfirmed).
    "asr.empty": Code(
        "warning",
        "speech recognition heard no words: the clip gets no transcript",
        "no transcript: speech recognition heard no words",
    ),
    "asr.no_speech": Code(
        "warning",
        "ASR text not used: Whisper's no-speech probability is high (noise, music, silence)",
        "ASR text not used: no-speech probability {value} (> {threshold})",
        ">",
        decimals=2,
    ),
    "asr.low_confidence": Code(
        "warning",
        "ASR text not used: mean token log-probability below -1 (a failed decode)",
        "ASR text not used: mean log-probability {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    "asr.compression": Code(
        "warning",
        "ASR text not used: its compression ratio is above 2.4 (repetitive text, a decoding loop)",
        "ASR text not used: compression ratio {value} (> {threshold})",
        ">",
        decimals=2,
    ),
    "asr.repetition": Code(
        "warning",
        "ASR text not used: it repeats an n-gram in a loop (a hallucination)",
        "ASR text not used: \"{ngram}\" repeated {repeats} times in a row",
    ),
    "asr.rate": Code(
        "warning",
        "ASR text not used: characters per second of speech outside the plausible range",
        "ASR text not used: {value} chars/s of speech ({cmp} {threshold} chars/s)",
        "outside",
    ),
    "asr.no_speech_detected": Code(
        "warning",
        "ASR text not used: the VAD found (almost) no speech in the clip",
        "ASR text not used: text heard where the VAD found no speech",
    ),
    "asr.non_speech": Code(
        "warning",
        "ASR text not used: it is a non-speech caption (`[Music]`, `(applause)`, ♪)",
        "ASR text not used: a non-speech caption ({text})",
    ),
    "asr.bad_timestamps": Code(
        "warning",
        "ASR text not used: its word times are out of order or outside the clip",
        "ASR text not used: word times out of order or outside the clip",
    ),
    "transcript.mismatch": Code(
        "warning",
        "the given transcript does not match what speech recognition heard (CER above 0.35); the report "
        "shows both texts",
        "transcript does not match the audio: CER {value} vs the ASR text (> {threshold})",
        ">",
        decimals=2,
    ),
    "transcript.language": Code(
        "warning",
        "the audio's detected language is not the expected one (`--language`)",
        "language mismatch: the audio sounds like {heard} (p {probability:.2f}), expected {expected}",
    ),
    # -- speaker identity (the `[voice]` extra; prep.voice.clips, thresholds in prep.voice.consistency) --
    "voice.other": Code(
        "warning",
        "similarity to the speaker's voice below 0.80: may be another voice (never selected)",
        "sounds like a different voice: similarity {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    "voice.other_reject": Code(
        "reject",
        "similarity to the speaker's voice below 0.70: another voice",
        "a different voice: similarity {value} (< {threshold})",
        "<",
        decimals=2,
    ),
    # -- diarisation (the `[voice]` extra; prep.stages.diarise, prep.voice.pieces) --------------------
    "diarise.other_voices": Code(
        "info",
        "the recording holds several voices; the other voices' turns were dropped (`--keep-voice main`)",
        "{voices} voices in the recording: kept the main voice, dropped {value} s of the other voices' turns",
        decimals=1,
    ),
    "diarise.unseparated": Code(
        "info",
        "speech where voices overlap, change or take turns too short to separate was dropped, never kept as one voice",
        "{value} s of speech dropped where voices overlap or turns are too short to separate",
        decimals=1,
    ),
    # -- decoding and samples --------------------------------------------------------------------
    "input.error": Code("error", "the input file is missing, a directory without audio, or unreadable", "{detail}"),
    "decode.error": Code("error", "the input could not be decoded", "{detail}"),
    "samples.nonfinite": Code(
        "warning",
        "NaN/Inf samples in the source, replaced by silence",
        "{value} NaN/Inf samples replaced by silence",
        decimals=0,
    ),
    "samples.over_full_scale": Code(
        "warning",
        "float samples beyond full scale in the source",
        "float samples exceed full scale (peak {value} dBFS > {threshold} dBFS); gain is reduced",
        ">",
        decimals=2,
    ),
    "longform.silent": Code(
        "reject",
        "a long file with no signal at all (digital silence)",
        "no signal in {value} s of audio (digital silence)",
        decimals=0,
    ),
    # -- output and failures ---------------------------------------------------------------------
    "output.scaled": Code(
        "warning",
        "the written clip would have clipped: scaled into full scale",
        "output peak {value} > full scale ({threshold}); scaled down",
        ">",
        decimals=2,
    ),
    "output.error": Code("error", "the clip could not be written", "{detail}"),
    "stage.error": Code("error", "a stage failed on the clip", "{stage}: {detail}"),
    "internal.error": Code(
        "error", "a stage crashed (a bug): the clip could not be processed", "{stage}: internal error: {detail}"
    ),
    "legacy.reason": Code(
        "info",
        "a reason recorded by an older voiceprep (no code); its severity comes from the old verdict",
        "{detail}",
    ),
}


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    """Something a stage found about a clip.

    Attributes
    ----------
    code : str
        Key of :data:`CODES`.
    severity : str
        One of :data:`SEVERITIES`.
    metric : str or None
        Name of the metric judged, if any.
    value : float or None
        The metric's value.
    threshold : float or None
        The limit it was judged against.
    message : str
        Human-readable, rendered from the code's template.
    """

    code: str
    severity: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise PrepError(f"unknown severity {self.severity!r}; expected one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (a non-finite number becomes ``null``, ``"inf"`` or ``"-inf"``)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "metric": self.metric,
            "value": _to_json(self.value),
            "threshold": _to_json(self.threshold),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                code=str(data["code"]),
                severity=str(data["severity"]),
                metric=data.get("metric"),
                value=_from_json(data.get("value")),
                threshold=_from_json(data.get("threshold")),
                message=str(data.get("message") or ""),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PrepError(f"malformed finding {str(data)[:120]}: {err}") from err


def _to_json(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return None if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _from_json(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # also "inf" / "-inf"


# -- verdict -------------------------------------------------------------------------------------
def verdict_of(findings: Iterable[Finding]) -> str:
    """The verdict a clip's findings make.

    ``error`` if any finding is an error, else ``rejected`` if any is a
    ``reject``, else ``warning`` if any is a warning, else ``approved``;
    ``info`` findings never change the verdict.
    """
    worst = max((_rank(f.severity) for f in findings), default=0)
    return _VERDICT_OF_SEVERITY[SEVERITIES[worst]]


def worst_verdict(*verdicts: str) -> str:
    """Return the worst of the given verdicts (``approved`` when none)."""
    return max(verdicts, key=VERDICTS.index, default="approved")


# -- rendering -----------------------------------------------------------------------------------
def _shown(value: float, scale: int) -> Decimal:
    """``value`` times ``10**scale``, exactly."""
    return Decimal(value).scaleb(scale)


def _threshold_text(threshold: float, scale: int) -> tuple[Decimal, str]:
    """The threshold as configured (shortest repr, scaled), without trailing zeros."""
    shown = Decimal(repr(float(threshold))).scaleb(scale)
    text = format(shown.normalize(), "f")
    return Decimal(text), text


def _holds(compare: str, shown_value: Decimal, shown_threshold: Decimal, value: float, threshold: float) -> bool:
    """Whether the shown numbers make the comparison the real ones make."""
    if compare == "<":
        return shown_value < shown_threshold
    if compare == ">":
        return shown_value > shown_threshold
    if compare == "abs>":
        return abs(shown_value) > shown_threshold
    if compare == "outside":
        return shown_value < shown_threshold if value < threshold else shown_value > shown_threshold
    return shown_value != shown_threshold  # "!="


def _value_text(shown: Decimal, decimals: int, signed: bool) -> str:
    quantum = Decimal(1).scaleb(-decimals)
    rounded = shown.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.0"
    return format(rounded, "+f" if signed else "f")


def format_pair(code: str, value: float | None, threshold: float | None = None) -> tuple[str, str]:
    """``value`` and ``threshold`` as a message of ``code`` shows them.

    The value is rounded to the code's decimals (half to even, as Python's
    format does); when the rounded value would no longer make the code's
    comparison with the threshold as shown (``9.6 < 10`` shown as ``10 < 10``)
    digits are added until it does.  The threshold is shown as configured.

    Returns
    -------
    value_text, threshold_text : str
        ``""`` for a value or threshold that is None.
    """
    spec = CODES[code]
    with localcontext() as ctx:
        ctx.prec = 1200  # exact: a double has at most ~770 significant decimal digits
        thr_text = ""
        shown_thr = None
        if threshold is not None:
            if math.isfinite(threshold):
                shown_thr, thr_text = _threshold_text(threshold, spec.scale)
            else:
                thr_text = str(threshold)
        if value is None:
            return "", thr_text
        if not math.isfinite(value):
            return str(value), thr_text
        shown = _shown(value, spec.scale)
        decimals = spec.decimals
        text = _value_text(shown, decimals, spec.signed)
        if spec.compare is None or shown_thr is None or threshold is None:
            return text, thr_text
        # Distinct doubles differ within ~1100 decimal digits; real values within a few.
        while not _holds(spec.compare, Decimal(text), shown_thr, value, threshold) and decimals < 1100:
            decimals += 1
            text = _value_text(shown, decimals, spec.signed)
        return text, thr_text


def finding(
    code: str,
    *,
    metric: str | None = None,
    value: float | None = None,
    threshold: float | None = None,
    severity: str | None = None,
    **params: Any,
) -> Finding:
    """A :class:`Finding` of ``code`` with its message rendered from the vocabulary.

    Parameters
    ----------
    code : str
        Key of :data:`CODES`.
    metric : str, optional
        Name of the metric judged.
    value, threshold : float, optional
        The metric's value and the limit it crossed (both shown in the message
        where the template has them; see :func:`format_pair`).
    severity : str, optional
        Overrides the code's default severity.
    **params
        Further fields of the code's template (``detail``, ``stage``, ...).

    Raises
    ------
    PrepError
        For an unknown code or severity, or a template field left out.
    """
    spec = CODES.get(code)
    if spec is None:
        raise PrepError(f"unknown finding code {code!r}")
    value = None if value is None else float(value)
    threshold = None if threshold is None else float(threshold)
    fields = dict(params)
    value_text, threshold_text = format_pair(code, value, threshold)
    if value is not None:
        fields["value"] = value_text
    if threshold is not None:
        fields["threshold"] = threshold_text
    if spec.compare == "outside" and value is not None and threshold is not None:
        fields["cmp"] = "<" if value < threshold else ">"
    try:
        message = spec.template.format(**fields)
    except (KeyError, IndexError, ValueError) as err:
        raise PrepError(f"finding {code!r}: template field {err} not given") from err
    return Finding(
        code=code,
        severity=severity or spec.severity,
        metric=metric,
        value=value,
        threshold=threshold,
        message=message,
    )


def findings_from_record(data: Mapping[str, Any]) -> tuple[Finding, ...]:
    """The findings of a clip record (manifest line or report entry).

    Reads ``findings`` when present.  A record written before findings
    existed has only ``verdict`` and ``reasons``: each reason becomes a
    ``legacy.reason`` finding whose severity is the old verdict's, so the
    verdict and the reasons read back unchanged.
    """
    stored = data.get("findings")
    if stored is not None:
        return tuple(Finding.from_dict(f) for f in stored)
    verdict = data.get("verdict") or "approved"
    if verdict not in _SEVERITY_OF_VERDICT:
        raise PrepError(f"unknown verdict {verdict!r}; expected one of {VERDICTS}")
    severity = _SEVERITY_OF_VERDICT[verdict]
    reasons = [str(r) for r in data.get("reasons") or ()]
    if not reasons and verdict != "approved":
        reasons = [f"{verdict} (no reason recorded)"]
    return tuple(finding("legacy.reason", severity=severity, detail=r) for r in reasons)
