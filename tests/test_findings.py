"""Findings: the code vocabulary, the one verdict rule, messages that agree with their numbers, the README table."""

from __future__ import annotations

import ast
import math
import re
import string
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prep.errors import PrepError
from prep.findings import CODES, SEVERITIES, Finding, finding, verdict_of

ROOT = Path(__file__).resolve().parent.parent


# -- verdict_of ------------------------------------------------------------------------------------
def _f(severity: str) -> Finding:
    return Finding(code="legacy.reason", severity=severity, message=severity)


@pytest.mark.parametrize(
    ("severities", "verdict"),
    [
        ((), "approved"),
        (("info",), "approved"),
        (("info", "info"), "approved"),
        (("warning",), "warning"),
        (("info", "warning", "info"), "warning"),
        (("reject",), "rejected"),
        (("warning", "reject", "warning"), "rejected"),
        (("error",), "error"),
        (("reject", "error", "warning", "info"), "error"),
    ],
)
def test_verdict_of_rules(severities, verdict):
    assert verdict_of(_f(s) for s in severities) == verdict


@given(st.lists(st.sampled_from(["info", "warning", "reject", "error"]), max_size=8))
def test_verdict_of_is_the_worst_severity_and_ignores_order_and_info(severities):
    if "error" in severities:
        expected = "error"
    elif "reject" in severities:
        expected = "rejected"
    elif "warning" in severities:
        expected = "warning"
    else:
        expected = "approved"
    found = [_f(s) for s in severities]
    assert verdict_of(found) == expected
    assert verdict_of(reversed(found)) == expected
    assert verdict_of([*found, _f("info")]) == expected


def test_bad_codes_severities_and_missing_fields_are_errors():
    with pytest.raises(PrepError, match=r"unknown finding code 'snr\.bad'"):
        finding("snr.bad", value=1.0, threshold=2.0)
    with pytest.raises(PrepError, match="unknown severity 'fatal'"):
        Finding("snr.low", "fatal")
    with pytest.raises(PrepError, match="unknown severity"):
        finding("snr.low", value=15.0, threshold=20.0, severity="bad")
    with pytest.raises(PrepError, match="'detail'"):
        finding("decode.error")
    assert finding("snr.low", value=15.0, threshold=20.0, severity="reject").severity == "reject"


def test_vocabulary_is_well_formed():
    assert SEVERITIES == ("info", "warning", "reject", "error")
    for code, spec in CODES.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", code), code
        assert spec.severity in SEVERITIES, code
        assert spec.meaning and spec.template, code
        fields = {name for _, name, _, _ in string.Formatter().parse(spec.template) if name}
        if spec.compare is not None:
            assert {"value", "threshold"} <= fields, code  # a comparison shows both numbers


# -- messages agree with their numbers -------------------------------------------------------------
_NUMBER = r"[-+]?\d+(?:\.\d+)?"


def _unit_scale(template: str) -> int:
    """Power of ten a template's unit implies (read from the text, not from the vocabulary)."""
    after = template.split("{value}", 1)[1].lstrip()
    if after.startswith("%"):
        return 2
    if after.startswith("kHz"):
        return -3
    return 0


def _dummy(spec: str) -> object:
    return 1.5 if spec else "x"


def _params(template: str) -> dict[str, object]:
    return {
        name: _dummy(spec)
        for _, name, spec, _ in string.Formatter().parse(template)
        if name and name not in ("value", "threshold", "cmp")
    }


def _pattern(template: str) -> re.Pattern[str]:
    out = []
    for literal, name, _spec, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name in ("value", "threshold"):
            out.append(f"(?P<{name}>{_NUMBER})")
        elif name == "cmp":
            out.append("(?P<cmp>[<>])")
        elif name is not None:
            out.append(".*?")
    return re.compile("".join(out) + "$")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _check_message(code: str, value: float, threshold: float) -> None:
    spec = CODES[code]
    item = finding(code, metric="m", value=value, threshold=threshold, **_params(spec.template))
    assert (item.code, item.value, item.threshold, item.metric) == (code, value, threshold, "m")
    match = _pattern(spec.template).match(item.message)
    assert match, (code, item.message)
    shown_v, shown_t = Decimal(match["value"]), Decimal(match["threshold"])
    scale = _unit_scale(spec.template)
    # The shown threshold is the configured one; the shown value a correct rounding of the real one.
    assert shown_t == Decimal(repr(threshold)).scaleb(scale), (code, item.message)
    exact = Decimal(value).scaleb(scale)
    assert abs(shown_v - exact) <= Decimal("0.5").scaleb(-_decimals(match["value"])), (code, value, item.message)
    # ... and they compare as the real numbers do.
    if spec.compare == "<":
        assert shown_v < shown_t, item.message
    elif spec.compare == ">":
        assert shown_v > shown_t, item.message
    elif spec.compare == "abs>":
        assert abs(shown_v) > shown_t, item.message
    elif spec.compare == "outside":
        assert (shown_v < shown_t) == (value < threshold) and (shown_v > shown_t) == (value > threshold), item.message
        assert match["cmp"] == ("<" if value < threshold else ">"), item.message
    else:
        assert spec.compare == "!=", code
        assert shown_v != shown_t, item.message


_THRESHOLDS = (10.0, 20.0, 2.0, 0.3, 0.6, 0.001, 0.01, 7000.0, 2000.0, 1.5, 0.45, 0.5, 0.02, 2.5, 0.4, 1.0, 30.0,
               3.5, -3.5, -23.0, -1.0, -70.0)


def _bad_values(compare: str, threshold: float) -> list[float]:
    """Values just beyond ``threshold`` on the bad side (both sides for the two-sided comparisons):
    at and around every rounding boundary from whole units down to 1e-7 of one."""
    steps = [m * 10.0**-k for k in range(8) for m in (0.04, 0.4, 0.45, 0.5, 0.55, 0.6, 0.96, 1.0, 1.5, 4.0)]
    below = [threshold - s for s in steps] + [math.nextafter(threshold, -math.inf)]
    above = [threshold + s for s in steps] + [math.nextafter(threshold, math.inf)]
    if compare == "<":
        return below
    if compare == ">":
        return above
    if compare == "abs>":
        return above + [-v for v in above]
    return below + above  # "outside", "!="


_COMPARED = sorted(code for code, spec in CODES.items() if spec.compare is not None)


@pytest.mark.parametrize("code", _COMPARED)
def test_every_message_agrees_with_its_numbers(code):
    compare = CODES[code].compare
    for threshold in _THRESHOLDS:
        if compare == "abs>" and threshold <= 0:
            continue
        for value in _bad_values(compare, threshold):
            _check_message(code, value, threshold)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_COMPARED),
    st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
)
def test_messages_agree_with_their_numbers_for_any_values(code, value, threshold):
    compare = CODES[code].compare
    if compare == "abs>":
        threshold = abs(threshold)
    bad = {
        "<": value < threshold,
        ">": value > threshold,
        "abs>": abs(value) > threshold,
        "outside": value != threshold,
        "!=": value != threshold,
    }[compare]
    if bad:
        _check_message(code, value, threshold)


def test_the_old_contradictions_are_gone():
    snr = finding("snr.too_low", metric="snr_db", value=9.6, threshold=10.0).message
    assert "9.6 dB (< 10 dB)" in snr  # was "SNR ≈ 10 dB (< 10 dB)"
    short = finding("duration.too_short", metric="duration_s", value=1.58, threshold=2.0).message
    assert "1.6 s (< 2 s)" in short  # was "1.5 s" next to a 1.6 s column
    almost = finding("duration.short", metric="duration_s", value=9.98, threshold=10.0).message
    assert "9.98 s (< 10 s" in almost
    clip = finding("clipping.heavy", metric="clipping_ratio", value=0.0100001, threshold=0.01).message
    assert "1.00001 % of samples clipped (> 1 %)" in clip


def test_messages_without_a_comparison_show_their_value():
    assert finding("samples.nonfinite", value=101).message == "101 NaN/Inf samples replaced by silence"
    assert "no signal in 90 s of audio" in finding("longform.silent", value=90.2).message
    assert finding("loudness.silent", threshold=-70.0).message.endswith("above -70 LUFS)")


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_renders(code):
    spec = CODES[code]
    fields = {name for _, name, _, _ in string.Formatter().parse(spec.template) if name}
    numbers = {k: 2.5 for k in ("value", "threshold") if k in fields}
    if spec.compare in ("<", "outside", "!="):
        numbers["value"] = 1.5
    item = finding(code, **numbers, **_params(spec.template))
    assert item.severity == spec.severity and item.message and "{" not in item.message
    assert Finding.from_dict(item.to_dict()) == item


# -- the vocabulary is the only verdict maker and every code is used ------------------------------
def _code_literals(tree: ast.AST) -> set[str]:
    """String constants shaped like a finding code."""
    strings = (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return {s for s in strings if re.fullmatch(r"[a-z]+\.[a-z_]+", s)}


def test_every_code_is_raised_somewhere_and_every_raised_code_exists():
    used: set[str] = set()
    for path in (ROOT / "prep").rglob("*.py"):
        if path.name == "findings.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "finding" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    assert first.value in CODES, f"{path.name}:{node.lineno}: unknown code {first.value!r}"
        used |= _code_literals(tree) & set(CODES)
    # legacy.reason is made by findings.py itself when an old record is read.
    assert used == set(CODES) - {"legacy.reason"}


def test_no_module_but_findings_decides_a_verdict():
    offenders = []
    for path in (ROOT / "prep").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "with_verdict":
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg in ("verdict", "reasons"):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# -- README ----------------------------------------------------------------------------------------
def test_readme_lists_exactly_the_vocabulary():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.index("| code | severity | meaning |")
    rows = {}
    for line in text[head:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        code = cells[0].strip("`")
        assert code not in rows, f"README lists {code} twice"
        rows[code] = cells[1].strip("`")
    assert set(rows) == set(CODES)
    assert {code: severity for code, severity in rows.items()} == {c: s.severity for c, s in CODES.items()}


# -- call sites: each place that judges a clip gives its code ---------------------------------------
def _clip(audio, rate: int = 16000, **kw):
    from prep.clip import Clip

    return Clip(id="c", source="c.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=audio, **kw)


def test_a_failing_stage_gives_stage_error_and_a_crashing_one_internal_error():
    import numpy as np

    from prep.run.pipeline import run_stages

    class Fails:
        name = "fails"
        changes = frozenset()

        def apply(self, clip):
            raise PrepError("cannot do it")

    class Crashes:
        name = "crashes"
        changes = frozenset()

        def apply(self, clip):
            raise ZeroDivisionError("oops")

    (failed,) = run_stages(_clip(np.zeros(1600, np.float32)), [Fails(), Crashes()])
    assert [(f.code, f.severity) for f in failed.findings] == [("stage.error", "error")]
    assert failed.verdict == "error" and failed.reasons == ("fails: cannot do it",)
    (crashed,) = run_stages(_clip(np.zeros(1600, np.float32)), [Crashes()])
    assert [f.code for f in crashed.findings] == ["internal.error"]
    assert crashed.reasons == ("crashes: internal error: ZeroDivisionError: oops",)


def test_source_samples_and_written_output_findings(tmp_path):
    import numpy as np
    import soundfile as sf

    from prep.run.runner import Job, load_clip, process_job

    rate = 16000
    x = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate).astype(np.float32)
    bad = x.copy()
    bad[10:13] = np.nan
    bad[20] = -np.inf
    sf.write(tmp_path / "nan.wav", bad, rate, subtype="FLOAT")
    clip = load_clip(Job(str(tmp_path / "nan.wav"), "s"))
    ((found),) = clip.findings
    assert (found.code, found.metric, found.value) == ("samples.nonfinite", "nonfinite_samples", 4.0)
    assert clip.verdict == "warning" and found.message.startswith("4 NaN/Inf samples")

    sf.write(tmp_path / "hot.wav", 3.0 * x, rate, subtype="FLOAT")
    (hot,) = process_job(Job(str(tmp_path / "hot.wav"), "s"), [], out_dir=tmp_path / "out")
    codes = [f.code for f in hot.findings]
    assert codes == ["samples.over_full_scale", "output.scaled"], codes
    assert hot.findings[0].value == pytest.approx(20 * math.log10(1.5)) and hot.findings[0].threshold == 0.0
    assert hot.findings[1].value == pytest.approx(1.5) and hot.output is not None

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    (unwritten,) = process_job(Job(str(tmp_path / "nan.wav"), "s"), [], out_dir=blocked)
    assert [f.code for f in unwritten.findings] == ["samples.nonfinite", "output.error"]
    assert unwritten.verdict == "error" and unwritten.output is None

    (missing,) = process_job(Job(str(tmp_path / "gone.wav"), "s"), [])
    assert [f.code for f in missing.findings] == ["input.error"] and "no such file" in missing.reasons[0]
    (tmp_path / "text.wav").write_text("not audio")
    (garbage,) = process_job(Job(str(tmp_path / "text.wav"), "s"), [])
    assert [f.code for f in garbage.findings] == ["decode.error"] and "text.wav" in garbage.reasons[0]


def test_slice_without_a_pause_and_the_dropped_transcript():
    import dataclasses

    import numpy as np

    from prep.stages.slice import Slice

    rate = 8000
    clip = _clip(np.zeros(17 * rate, np.float32), rate, transcript="hello")
    clip = dataclasses.replace(clip, speech=((0.5, 5.5), (6.0, 16.0)))  # as an earlier stage's VAD found them
    pieces = Slice(min_s=1.0, max_s=8.0).apply(clip)
    assert len(pieces) == 2
    assert [[f.code for f in p.findings] for p in pieces] == [
        ["transcript.dropped"],
        ["transcript.dropped", "slice.no_pause"],
    ]
    no_pause = pieces[1].findings[1]
    length = pieces[1].span_s[1] - pieces[1].span_s[0]
    assert (no_pause.value, no_pause.threshold) == (pytest.approx(length), 8.0) and length > 8.0


def test_loudness_that_misses_its_target_says_how(monkeypatch):
    import numpy as np

    import prep.stages.loudness as loudness

    rate = 16000
    x = 0.1 * np.sin(2 * np.pi * 300 * np.arange(2 * rate) / rate).astype(np.float32)
    real = loudness._normalize_measured

    def missed(*args, **kwargs):
        y, rep = real(*args, **kwargs)
        return y, loudness.NormalizeReport(rep.input_lufs, rep.input_true_peak_dbtp, rep.gain_db,
                                           rep.limiter_reduction_db, rep.limiter_peak_reduction_db,
                                           output_lufs=-23.04, output_true_peak_dbtp=-0.996, reached_target=False)

    monkeypatch.setattr(loudness, "_normalize_measured", missed)
    out = loudness.Loudness(target_lufs=-23.0, true_peak_dbtp=-1.0).apply(_clip(x, rate))
    assert [f.code for f in out.findings] == ["loudness.over_peak", "loudness.off_target"]
    peak, level = out.findings
    assert "-0.996 dBTP above the -1 dBTP ceiling" in peak.message  # not "-1.00 ... above -1"
    assert "reached -23.04 LUFS, target -23 LUFS" in level.message
    # a miss by level alone gives only the level finding
    monkeypatch.setattr(loudness, "_normalize_measured", lambda *a, **k: (
        real(*a, **k)[0], loudness.NormalizeReport(-30.0, -10.0, 0.0, 0.0, 0.0, -24.5, -3.0, False)))
    out = loudness.Loudness(target_lufs=-23.0, true_peak_dbtp=-1.0).apply(_clip(x, rate))
    assert [(f.code, f.value, f.threshold) for f in out.findings] == [("loudness.off_target", -24.5, -23.0)]
