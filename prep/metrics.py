"""Every metric a clip can carry, declared once; and the one reader of metrics.

The registry (:data:`METRICS`) names each metric a stage or the runner
writes, with its unit, its meaning, who writes it and what it describes
(its *scope*):

``source``
    The recording before processing: :class:`~prep.stages.measure.Measure`
    measures each clip's own span of the downmixed source, at the source rate.
    These names, and only these, start with ``source_``.
``output``
    The written clip.  A bare name (``snr_db``, ``clipping_ratio``) or an
    ``output_`` prefix where the stage that writes it also records a level
    before its own processing (``output_lufs`` next to ``pre_gain_lufs``).
``process``
    What a stage measured to decide, or did: gains, limiter reduction,
    trimmed seconds, counts, the denoiser's own SNR estimates.  Named after
    the stage or the action (``denoise_snr_in_db``, ``pre_gain_lufs``,
    ``trimmed_start_s``); never ``source_`` or ``output_``.

A source metric that measures the same quantity as an output metric names
it as its pair (``source_snr_db`` -> ``snr_db``); :func:`source_metrics`
prefers the source value of each pair.  Names end in their unit
(``_db``, ``_dbfs``, ``_lufs``, ``_dbtp``, ``_lu``, ``_s``, ``_hz``,
``_ratio`` for a fraction in [0, 1]) unless the unit is a count, a plain
number or none (``score``, ``clipped_runs``, ``downmix_mode``).

:func:`undeclared` is what :func:`prep.run.pipeline.run_stages` checks each
stage's new metrics with; the README's metric tables are
:func:`markdown_tables` (a test keeps them equal).  Reports written before
these names (``report_version`` < 3) are read through
:func:`upgrade_metrics`.

Light on purpose (no SciPy): the report writer, selection and scoring all
read metrics through :func:`finite`, :func:`pick` and :func:`source_metrics`,
so they agree on which value stands for a clip.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Metric",
    "METRICS",
    "SCOPES",
    "KINDS",
    "RUNNER",
    "METRICS_VERSION",
    "LEGACY_NAMES",
    "metric",
    "source_name",
    "undeclared",
    "upgrade_metrics",
    "markdown_tables",
    "finite",
    "pick",
    "source_metrics",
]

Scope = Literal["source", "output", "process"]
Kind = Literal["float", "int", "bool", "str", "list", "dict"]
#: What a metric can describe (see the module docstring).
SCOPES: tuple[str, ...] = ("source", "output", "process")
#: Value types: a number (``float``, ``int``; ``None`` or ``nan`` when undefined), a flag, a label,
#: a per-channel list or a dict.
KINDS: tuple[str, ...] = ("float", "int", "bool", "str", "list", "dict")
#: The ``written_by`` entry of metrics the runner writes (decoding, long files, transcript checks).
RUNNER = "runner"
#: Bumped whenever a metric is renamed or changes meaning; part of the pipeline fingerprint, so a
#: resumed run redoes the clips an older voiceprep recorded under other names.
METRICS_VERSION = 3


@dataclass(frozen=True)
class Metric:
    """One declared metric.

    Attributes
    ----------
    name : str
        The key in :attr:`prep.clip.Clip.metrics`.
    unit : str
        ``dB``, ``dBFS``, ``LUFS``, ``dBTP``, ``LU``, ``s``, ``Hz``, ``ratio``
        (fraction in [0, 1]), ``count``, ``index``, ``MOS``, ``points``,
        ``chars/s``, ``chars``, ``z``, ``FS`` (fraction of full scale, signed),
        or ``""`` for labels, flags and unitless values.
    meaning : str
        One line for the README and the report.
    written_by : tuple of str
        Stage names (``Stage.name``) that write it, or :data:`RUNNER`.
    scope : {"source", "output", "process"}
    kind : {"float", "int", "bool", "str", "list", "dict"}
    output_pair : str or None
        For a ``source`` metric: the ``output`` metric measuring the same
        quantity on the written clip.
    """

    name: str
    unit: str
    meaning: str
    written_by: tuple[str, ...]
    scope: Scope
    kind: Kind = "float"
    output_pair: str | None = None


_M = Metric
_MEASURE, _SCORE = "measure_input", "score"

_DECLARED: tuple[Metric, ...] = (
    # -- source: the recording before processing (measure_input; the runner's decode check) --------
    _M("source_snr_db", "dB", "active-speech SNR of the source (see `snr_db`)",
       (_MEASURE,), "source", output_pair="snr_db"),
    _M("source_clipping_ratio", "ratio", "share of source samples on clipped plateaus (see `clipping_ratio`)",
       (_MEASURE,), "source", output_pair="clipping_ratio"),
    _M("source_clipped_runs", "count", "clipped plateaus in the source",
       (_MEASURE,), "source", "int", output_pair="clipped_runs"),
    _M("source_dc_offset", "FS", "mean sample value of the source", (_MEASURE,), "source", output_pair="dc_offset"),
    _M("source_bandwidth_hz", "Hz", "effective bandwidth of the source (see `bandwidth_hz`)",
       (_MEASURE,), "source", output_pair="bandwidth_hz"),
    _M("source_reverb_s", "s", "decay-time estimate of the source's room (see `reverb_s`)",
       (_MEASURE,), "source", output_pair="reverb_s"),
    _M("source_tonal_ratio", "ratio", "music / hum indicator of the source (see `tonal_ratio`)",
       (_MEASURE,), "source", output_pair="tonal_ratio"),
    _M("source_lufs", "LUFS", "BS.1770-4 integrated loudness of the (downmixed) source; `-inf` if silent",
       (_MEASURE,), "source", output_pair="output_lufs"),
    _M("source_peak_dbfs", "dBFS", "sample peak of the decoded source (above 0 for float files beyond full "
       "scale; `-inf` if silent)", (RUNNER,), "source"),
    # DNSMOS of the source span (measure_input, only with the optional extra `pip install 'voiceprep[mos]'`)
    _M("source_dnsmos_ovrl", "MOS", "DNSMOS P.835 overall (1–5) of the source span; judged and scored, optional "
       "extra", (_MEASURE,), "source", output_pair="dnsmos_ovrl"),
    _M("source_dnsmos_sig", "MOS", "DNSMOS P.835 speech signal quality (1–5) of the source span, optional extra",
       (_MEASURE,), "source", output_pair="dnsmos_sig"),
    _M("source_dnsmos_bak", "MOS", "DNSMOS P.835 background quality (1–5, 5 = no audible noise) of the source "
       "span; judged, optional extra", (_MEASURE,), "source", output_pair="dnsmos_bak"),
    # -- output: the written clip ----------------------------------------------------------------
    _M("duration_s", "s", "clip length", (_SCORE,), "output"),
    _M("speech_s", "s", "VAD speech in the clip", ("trim", "diarise", "slice", _SCORE, RUNNER), "output"),
    _M("speech_ratio", "ratio", "`speech_s` over the clip length", ("trim", "diarise", "slice", _SCORE, RUNNER),
       "output"),
    _M("snr_db", "dB", "active-speech SNR of weighted powers (BS.1770's high shelf, 100 Hz high-pass): VAD "
       "speech frames (noise subtracted) over the noise floor of the pauses and the dips between words, raised "
       "under a fluctuating noise (babble) by the spread of its levels; 100 dB "
       "for digital silence", (_SCORE,), "output"),
    _M("clipping_ratio", "ratio", "samples on clipped plateaus (≥ 2 samples within 0.01 % of the positive or "
       "negative peak, even when the rail is below full scale)", (_SCORE,), "output"),
    _M("clipped_runs", "count", "clipped plateaus", (_SCORE,), "output", "int"),
    _M("dc_offset", "FS", "mean sample value", (_SCORE,), "output"),
    _M("bandwidth_hz", "Hz", "highest frequency within 50 dB of the speech band's level: ~3.5–4 kHz for phone "
       "audio, ~8 kHz for a 16 kHz source, whatever the file's rate; not measured again when "
       "`source_bandwidth_hz` is known", (_SCORE,), "output"),
    _M("reverb_s", "s", "decay-time estimate (T60-like) from the fall of 500–2000 Hz energy after speech "
       "offsets; a flag, not a room measurement; not measured again when `source_reverb_s` is known",
       (_SCORE,), "output"),
    _M("tonal_ratio", "ratio", "music / hum indicator: steady spectral peaks in the quietest 30 % of frames; "
       "not measured again when `source_tonal_ratio` is known", (_SCORE,), "output"),
    _M("output_lufs", "LUFS", "BS.1770-4 integrated loudness of the clip (from `loudness`, else measured by "
       "`score`)", ("loudness", _SCORE), "output"),
    _M("output_true_peak_dbtp", "dBTP", "true peak of the clip (from `loudness`, else measured by `score`)",
       ("loudness", _SCORE), "output"),
    _M("dnsmos_ovrl", "MOS", "DNSMOS P.835 overall (1–5) of the clip, only with the optional extra "
       "`pip install 'voiceprep[mos]'`; scored and judged where `source_dnsmos_ovrl` is missing",
       (_SCORE,), "output"),
    _M("dnsmos_sig", "MOS", "DNSMOS P.835 speech signal quality (1–5), optional extra", (_SCORE,), "output"),
    _M("dnsmos_bak", "MOS", "DNSMOS P.835 background quality (1–5), optional extra", (_SCORE,), "output"),
    _M("dnsmos_p808", "MOS", "DNSMOS P.808 MOS (1–5), optional extra", (_SCORE,), "output"),
    _M("score", "points", "quality score 0–100 (source values where measured)", (_SCORE,), "output"),
    _M("score_penalties", "points", "the points each problem cost, by penalty name", (_SCORE,), "output", "dict"),
    # -- process: what a stage measured to decide, or did -----------------------------------------
    _M("nonfinite_samples", "count", "NaN/Inf samples of the decoded source replaced by silence",
       (RUNNER,), "process", "int"),
    _M("long_file", "", "the source was longer than `LongForm.long_file_s` and cut into pieces",
       (RUNNER,), "process", "bool"),
    _M("piece_index", "index", "which piece of a long file (from 0)", (RUNNER,), "process", "int"),
    _M("piece_count", "count", "pieces the long file was cut into", (RUNNER,), "process", "int"),
    _M("downmix_mode", "", "`mono`, `average`, `polarity_corrected` or `single_live_channel`",
       ("downmix", RUNNER), "process", "str"),
    _M("channel_rms_db", "dBFS", "RMS level of each source channel, as the downmix measured it",
       ("downmix", RUNNER), "process", "list"),
    _M("channel_correlation", "", "correlation of each source channel with the reference channel",
       ("downmix", RUNNER), "process", "list"),
    _M("dead_channels", "index", "source channels ignored as silent or dead", ("downmix", RUNNER), "process", "list"),
    _M("inverted_channels", "index", "source channels flipped as polarity-inverted",
       ("downmix", RUNNER), "process", "list"),
    _M("resampled_from_hz", "Hz", "rate before resampling (`null` when the rate was kept)",
       ("resample",), "process", "int"),
    _M("denoise_method", "", "what denoised the clip: `gate` (spectral gate), `deepfilter` (DeepFilterNet3, "
       "`[enhance]` extra), `blend` (the mean of both) or `off`; `--denoise auto` picks DeepFilterNet3 where "
       "`denoise_snr_in_db` is below 19 dB, or below 22 dB with `noise_nonstationarity_db` at least 0.7 dB, and "
       "from 20 to 33 dB runs both and blends them where DeepFilterNet3's local SNR over speech is below 19 dB",
       ("denoise",), "process", "str"),
    _M("noise_floor_dbfs", "dBFS", "the denoiser's noise-floor estimate of its input", ("denoise",), "process"),
    _M("denoise_snr_in_db", "dB", "the denoiser's SNR estimate of its input (decides softening and skipping)",
       ("denoise",), "process"),
    _M("denoise_snr_out_db", "dB", "the denoiser's SNR estimate of its output (input estimate + the change it "
       "measured in the same frames)",
       ("denoise",), "process"),
    _M("denoise_applied", "", "whether the denoiser changed the audio (the gate's do no harm may skip it)",
       ("denoise",), "process", "bool"),
    _M("denoise_strength", "ratio", "gate strength as used, after softening", ("denoise",), "process"),
    _M("noise_profile", "", "where the noise profile came from", ("denoise",), "process", "str"),
    _M("noise_nonstationarity_db", "dB", "how much the noise spectrum in the pauses varies over time (about 0: "
       "stationary hiss, hum, water; babble, crackle: more); `--denoise auto` uses it between 19 and 22 dB SNR",
       ("denoise",), "process"),
    _M("noise_reduction_db", "dB", "noise level the gate took away in the pauses", ("denoise",), "process"),
    _M("denoise_note", "", "why denoising was skipped or softened", ("denoise",), "process", "str"),
    _M("deepfilter_lsnr_db", "dB", "DeepFilterNet3's own mean local SNR estimate of the clip, when it ran",
       ("denoise",), "process"),
    _M("trimmed_start_s", "s", "non-speech cut from the start", ("trim",), "process"),
    _M("trimmed_end_s", "s", "non-speech cut from the end", ("trim",), "process"),
    _M("pauses_compressed", "count", "pauses over `max_pause_s` shortened", ("trim",), "process", "int"),
    _M("pause_removed_s", "s", "time the shortened pauses lost", ("trim",), "process"),
    _M("slice_index", "index", "which slice of the clip (from 0)", ("slice",), "process", "int"),
    _M("slice_count", "count", "slices the clip was cut into", ("slice",), "process", "int"),
    _M("pre_gain_lufs", "LUFS", "integrated loudness the loudness stage found before its gain (after "
       "denoise and trim); `-inf` if silent", ("loudness",), "process"),
    _M("pre_gain_true_peak_dbtp", "dBTP", "true peak before the loudness stage's gain", ("loudness",), "process"),
    _M("pre_gain_lra_lu", "LU", "loudness range (EBU Tech 3342) before the loudness stage's gain",
       ("loudness",), "process"),
    _M("gain_db", "dB", "static gain applied, including the make-up for the limiter's loss",
       ("loudness",), "process"),
    _M("limiter_reduction_db", "LU", "loudness the true-peak limiter took away", ("loudness",), "process"),
    _M("limiter_peak_reduction_db", "dB", "deepest instantaneous gain reduction of the limiter",
       ("loudness",), "process"),
    _M("transcript_chars", "chars", "spoken characters of the transcript", (RUNNER,), "process", "int"),
    _M("chars_per_s", "chars/s", "transcript characters per second of speech", (RUNNER,), "process"),
    _M("chars_per_s_z", "z", "robust z-score of `log chars_per_s` against the speaker's other clips",
       (RUNNER,), "process"),
    # -- speech recognition (the `[asr]` extra: prep.stages.transcribe) ---------------------------
    _M("asr_cer", "", "character error rate of the ASR text against the user's transcript after normalisation "
       "(case, punctuation, NFKC, numbers spelled out); above 0.35 `transcript.mismatch`; `null` when the ASR "
       "text was not usable", ("transcribe",), "process"),
    _M("asr_wer", "", "word error rate of the ASR text against the user's transcript (same texts as `asr_cer`)",
       ("transcribe",), "process"),
    _M("asr_confidence", "", "geometric-mean token probability (0–1) of the ASR text: `exp` of the "
       "token-weighted mean log-probability", ("transcribe",), "process"),
    _M("asr_avg_logprob", "", "token-weighted mean log-probability of the ASR text (below -1 "
       "`asr.low_confidence`)", ("transcribe",), "process"),
    _M("asr_no_speech_prob", "", "Whisper's no-speech probability (0–1), duration-weighted over segments",
       ("transcribe",), "process"),
    _M("asr_language_prob", "", "probability (0–1) of the detected language (1 when forced or English-only)",
       ("transcribe",), "process"),
    _M("asr_chars_per_s", "chars/s", "normalised ASR characters per second of speech (plausible: 3–30)",
       ("transcribe",), "process"),
    # -- speaker identity (the `[voice]` extra: prep.stages.voice, prep.voice.clips) ----------------
    _M("voice_similarity", "", "cosine similarity of the clip's speaker embedding to its speaker's robust "
       "centre (1 = the same voice; below 0.80 a warning, below 0.70 a rejection), only with the optional "
       "extra `pip install 'voiceprep[voice]'`", (RUNNER,), "output"),
    _M("voice_embedding", "", "speaker embedding of the clip's speech: 256 floats of a unit d-vector, "
       "rounded to 4 decimals (`[voice]` extra)", ("voice",), "process", "list"),
    _M("diarise_voice_count", "count", "voices the diarisation found in the clip's recording (or long-file "
       "piece) of over `min_recording_s` (`[voice]` extra)", ("diarise", RUNNER), "process", "int"),
    _M("diarise_voice_index", "index", "which of them the clip is (0 = the most speech; a long file's "
       "voices are matched across its pieces)", ("diarise", RUNNER), "process", "int"),
    _M("diarise_turn_index", "index", "which turn of its recording the clip was cut from", ("diarise",),
       "process", "int"),
    _M("diarise_dropped_s", "s", "speech of the recording dropped where voices overlap or turns are too "
       "short to separate", ("diarise",), "process"),
    _M("diarise_other_s", "s", "speech of the other voices' turns dropped (`--keep-voice main`)",
       ("diarise", RUNNER), "process"),
)


def _index(declared: Iterable[Metric]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in declared:
        if m.name in out:
            raise ValueError(f"metric {m.name!r} declared twice")
        out[m.name] = m
    return out


#: The registry: every metric a stage or the runner writes, by name.
METRICS: Mapping[str, Metric] = _index(_DECLARED)
_SOURCE_OF: dict[str, str] = {m.output_pair: m.name for m in _DECLARED if m.output_pair}

#: Names used before ``report_version`` 3, and their replacements.  ``input_peak`` was linear
#: (fraction of full scale) and becomes dB; ``input_lufs`` etc. were the loudness stage's pre-gain level.
LEGACY_NAMES: Mapping[str, str] = {
    "input_snr_db": "source_snr_db",
    "input_clipping_ratio": "source_clipping_ratio",
    "input_clipped_runs": "source_clipped_runs",
    "input_dc_offset": "source_dc_offset",
    "input_bandwidth_hz": "source_bandwidth_hz",
    "input_reverb_s": "source_reverb_s",
    "input_tonal_ratio": "source_tonal_ratio",
    "input_peak": "source_peak_dbfs",
    "snr_before_db": "denoise_snr_in_db",
    "snr_after_db": "denoise_snr_out_db",
    "input_lufs": "pre_gain_lufs",
    "input_true_peak_dbtp": "pre_gain_true_peak_dbtp",
    "input_lra_lu": "pre_gain_lra_lu",
}


def metric(name: str) -> Metric:
    """The declared metric ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not declared.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not declared in prep.metrics.METRICS") from None


def source_name(output: str) -> str | None:
    """The ``source`` metric paired with the ``output`` metric ``output`` (``snr_db`` -> ``source_snr_db``)."""
    return _SOURCE_OF.get(output)


def undeclared(names: Iterable[str], writer: str, extra: Iterable[Metric] = ()) -> list[str]:
    """Problems with ``writer`` writing the metrics ``names``; empty when all is well.

    Parameters
    ----------
    names : iterable of str
        Metric names written.
    writer : str
        The stage name, or :data:`RUNNER`.
    extra : iterable of Metric
        Metrics a stage outside this package declares itself (its ``metrics``
        class attribute); they count as declared for that stage.

    Returns
    -------
    list of str
        One line per name that is not declared, or declared for other writers only.
    """
    own = {m.name: m for m in extra}
    problems = []
    for name in names:
        m = own.get(name) or METRICS.get(name)
        if m is None:
            problems.append(f"{name!r} is not declared in prep.metrics.METRICS")
        elif writer not in m.written_by:
            problems.append(f"{name!r} is declared as written by {', '.join(m.written_by)}, not {writer}")
    return problems


def _peak_dbfs(value: Any) -> Any:
    linear = finite(value)
    if linear is None:
        return value
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def upgrade_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` with the names of older reports and manifests (:data:`LEGACY_NAMES`) replaced.

    Idempotent: current names are left alone, and an old name whose new name
    is already present is dropped.  Values are kept, except ``input_peak``
    (linear) which becomes ``source_peak_dbfs`` in dB.  An old report has
    no ``source_lufs`` (no stage measured the source level then).
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        new = LEGACY_NAMES.get(key)
        if new is None:
            out[key] = value
        elif new not in metrics:
            out[new] = _peak_dbfs(value) if key == "input_peak" else value
    return out


def markdown_tables() -> str:
    """The README's metric tables: source and output metrics, then process metrics (one row each)."""

    def row(m: Metric) -> str:
        writers = ", ".join(f"`{w}`" for w in m.written_by)
        unit = m.unit or "–"
        extra = f"{m.scope}" + (f" of `{m.output_pair}`" if m.output_pair else "")
        return f"| `{m.name}` | {unit} | {extra} | {writers} | {m.meaning} |"

    head = "| metric | unit | describes | written by | meaning |\n|---|---|---|---|---|\n"
    judged = [m for m in _DECLARED if m.scope != "process"]
    process = [m for m in _DECLARED if m.scope == "process"]
    return (
        head + "\n".join(row(m) for m in judged) + "\n\nWhat the stages measured to decide, or did:\n\n"
        + head + "\n".join(row(m) for m in process) + "\n"
    )


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


def _source_first(metrics: Mapping[str, Any], output: str) -> float | None:
    """The source value of ``output``'s pair where measured, else the output value."""
    src = source_name(output)
    return pick(metrics, src, output) if src else pick(metrics, output)


def source_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The values the score, the verdict and the report judge a clip on.

    For each output metric with a ``source`` pair in the registry
    (``snr_db`` <- ``source_snr_db``, recorded by
    :class:`prep.stages.measure.Measure` before processing) the source value
    where measured, else the output's; clipping is the worse of the two.

    Parameters
    ----------
    metrics : Mapping of str to object
        A clip's metrics, as in :attr:`prep.clip.Clip.metrics` or a manifest
        line (values that are not finite numbers count as missing).

    Returns
    -------
    dict of str to float or None
        Keyed by the output names: ``duration_s``, ``speech_ratio``,
        ``snr_db``, ``clipping_ratio``, ``bandwidth_hz``, ``reverb_s``,
        ``tonal_ratio``, ``dc_offset``, ``dnsmos_ovrl``, ``dnsmos_sig`` and
        ``dnsmos_bak``; None where not measured.
    """
    clip_src = source_name("clipping_ratio")
    clip_in = pick(metrics, clip_src) if clip_src else None
    clip_out = pick(metrics, "clipping_ratio")
    out = {
        name: _source_first(metrics, name)
        for name in ("duration_s", "speech_ratio", "snr_db", "clipping_ratio", "bandwidth_hz", "reverb_s",
                     "tonal_ratio", "dc_offset", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")
    }
    out["clipping_ratio"] = max((v for v in (clip_in, clip_out) if v is not None), default=None)
    return out
