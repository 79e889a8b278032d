"""Tests of prep.dsp.vad: speech regions, trimming, pause compression and slicing, on fixtures with known speech."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import soxr
import speechlike
from hypothesis import given, settings
from hypothesis import strategies as st

from prep.clip import Clip
from prep.dsp.vad import mask_to_regions, regions_to_mask, speech_mask, speech_regions, vad_frames
from prep.errors import ConfigError
from prep.metrics import Metric
from prep.run.decode import load
from prep.run.pipeline import run_stages
from prep.stages.downmix import downmix
from prep.stages.resample import resample
from prep.stages.slice import Slice, slice_bounds
from prep.stages.trim import Trim, compress_pauses, trim

DEMO_FILES = [
    "alice/a01.wav", "alice/a02.flac", "alice/a03.mp3", "alice/a04.m4a", "alice/a05.opus", "alice/a06.ogg",
    "bob/b01.wav", "bob/b02.flac", "bob/b03.mp3", "bob/b04.m4a", "bob/b05.ogg",
]


def _clip(audio: np.ndarray, rate: int, *, transcript: str | None = None, offset_s: float = 0.0) -> Clip:
    return Clip(id="rec", source="rec.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=audio,
                transcript=transcript, span_s=(offset_s, offset_s + audio.shape[-1] / rate))


def _overlap(a: tuple[float, float], regions) -> float:
    return sum(max(0.0, min(a[1], e) - max(a[0], s)) for s, e in regions)


@pytest.fixture(scope="module")
def demo(demo_dir, truth):
    """Decoded demo fixtures: name -> (mono float32, rate, truth regions)."""
    out = {}
    for name in DEMO_FILES:
        audio, rate = load(demo_dir / name)
        out[name] = (downmix(audio)[0], rate, [tuple(r) for r in truth[name]["speech_regions_s"]])
    return out


# -- speech regions on the fixtures -------------------------------------------------------
@pytest.mark.parametrize("name", DEMO_FILES)
def test_regions_match_the_fixture_truth(demo, name):
    audio, rate, known = demo[name]
    found = speech_regions(audio, sample_rate=rate)
    for region in known:  # every sentence found (its quiet decay may fall under the noise)
        assert _overlap(region, found) >= 0.85 * (region[1] - region[0]), (region, found)
    widened = [(s - 0.35, e + 0.35) for s, e in known]
    outside = sum(e - s for s, e in found) - sum(_overlap(r, found) for r in widened)
    assert outside < 0.2, f"{outside:.2f} s of non-speech called speech"


@pytest.mark.parametrize("name", DEMO_FILES)
def test_trim_keeps_every_word_of_the_fixtures(demo, name):
    audio, rate, known = demo[name]
    (out,) = run_stages(_clip(audio, rate), [Trim()])
    start, end = out.span_s
    assert start <= known[0][0] and end >= known[-1][1], (out.span_s, known)
    # ... and did trim: the fixtures have 0.8-1.4 s of lead-in and 0.9 s of tail
    assert out.metrics["trimmed_start_s"] > known[0][0] - 0.45
    assert out.metrics["trimmed_end_s"] > 0.4
    assert out.audio.shape[-1] == pytest.approx((end - start) * rate, abs=1)
    np.testing.assert_array_equal(out.audio, audio[round(start * rate) : round(start * rate) + out.audio.size])
    assert 0.6 < out.metrics["speech_ratio"] <= 1.0
    assert out.metrics["speech_s"] == pytest.approx(sum(e - s for s, e in known), abs=1.0)


# -- speech regions on synthetic speech with exact truth -------------------------------------
@pytest.mark.parametrize("snr_db", [None, 20, 10, 5])
@pytest.mark.parametrize("exponent", [0.0, 1.0], ids=["white", "pink"])
def test_no_phrase_is_lost_in_noise(snr_db, exponent):
    rate = 16000
    clean, known = speechlike.utterance(rate, seed=40)
    x = clean if snr_db is None else speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=41,
                                                                                      exponent=exponent), snr_db)
    found = speech_regions(x, sample_rate=rate, pad_s=0.2)
    for region in known:
        assert _overlap(region, found) >= 0.97 * (region[1] - region[0]), (region, found)
    assert found[0][0] <= known[0][0] and found[-1][1] >= known[-1][1]
    assert len(found) == len(known)  # the pauses between phrases are found too


def test_same_regions_at_every_rate():
    base_rate = 48000
    clean, _ = speechlike.utterance(base_rate, seed=42)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=43), 15.0)
    reference = speech_regions(noisy, sample_rate=base_rate)
    for rate in (8000, 16000, 22050, 44100):
        other = speech_regions(soxr.resample(noisy, base_rate, rate), sample_rate=rate)
        assert len(other) == len(reference)
        for (a, b), (c, d) in zip(reference, other, strict=True):
            assert abs(a - c) <= 0.061 and abs(b - d) <= 0.061


@pytest.mark.parametrize("gain", [1e-3, 1.5])
def test_same_regions_at_any_level(gain):
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=44)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=45), 20.0)
    scaled = speech_regions(noisy * np.float32(gain), sample_rate=rate)
    reference = speech_regions(noisy, sample_rate=rate)
    assert len(scaled) == len(reference)
    np.testing.assert_allclose(np.array(scaled), np.array(reference), atol=0.061)  # two 30 ms frames


def test_noise_level_change_in_a_long_recording():
    """The energy detector's noise floor follows the recording: a louder second half is not all speech."""
    rate = 16000
    clean, known = speechlike.utterance(rate, phrases_s=(2.0,) * 40, pauses_s=(1.0,) * 39, seed=46)  # ~2 min
    noise = speechlike.colored_noise(clean.size, seed=47, exponent=1.0)
    noise[clean.size // 2 :] *= 6.0
    found = speech_regions(speechlike.mix(clean, noise, 10.0), sample_rate=rate)
    late = [r for r in known if r[0] > clean.size / rate / 2 + 35.0]  # beyond the transition block
    for region in late:
        assert any(s >= region[0] - 0.6 and e <= region[1] + 0.6 for s, e in found), region


@pytest.mark.parametrize("signal", ["silence", "white noise", "hum", "tiny", "empty"])
def test_no_speech_in_non_speech(signal):
    rate = 16000
    t = np.arange(3 * rate) / rate
    x = {
        "silence": np.zeros(3 * rate),
        "white noise": 0.05 * speechlike.colored_noise(3 * rate, seed=48),
        "hum": 0.1 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 150 * t),
        "tiny": np.full(100, 0.3),
        "empty": np.zeros(0),
    }[signal].astype(np.float32)
    assert speech_regions(x, sample_rate=rate) == []


def test_speech_mask_shape_and_frames():
    rate = 22050
    clean, _ = speechlike.utterance(rate, seed=49)
    for frame_s in (0.01, 0.02, 0.03):
        mask = speech_mask(clean, sample_rate=rate, frame_s=frame_s)
        assert mask.dtype == bool and mask.shape == (math.ceil(clean.size / (frame_s * rate)),)
        regions = mask_to_regions(mask, frame_s=frame_s, duration_s=clean.size / rate)
        assert regions == speech_regions(clean, sample_rate=rate, frame_s=frame_s)
    frames = vad_frames(clean, sample_rate=rate)
    assert frames.snr_score.shape == frames.webrtc.shape == frames.energy_db.shape


def test_webrtc_decisions_are_webrtcvads_own():
    # vad_frames calls webrtcvad's C function on each frame directly: the same decisions as Vad.is_speech,
    # over 65 s at 22.05 kHz (three 30 s resampling blocks, a partial last frame), level-normalised as there.
    import webrtcvad

    rate = 22050
    parts = [speechlike.utterance(rate, seed=s)[0] for s in (49, 50, 51, 52, 53, 54, 55)]
    x = np.concatenate(parts)[: 65 * rate + 123]
    x = x + np.random.default_rng(3).normal(0, 0.003, x.size).astype(np.float32)
    y = soxr.ResampleStream(rate, 16000, 1, "float32", "LQ").resample_chunk(x, last=True)
    for frame_s in (0.02, 0.03):
        frames = vad_frames(x, sample_rate=rate, frame_s=frame_s)
        n = round(frame_s * 16000)
        gain = 10 ** (min(-20.0 - frames.speech_level_db, 50.0) / 20) * 32768.0
        pcm = np.clip(np.pad(y, (0, -y.size % n)) * np.float32(gain), -32768, 32767).astype(np.int16)
        vad = webrtcvad.Vad(3)
        own = [vad.is_speech(f.tobytes(), 16000) for f in pcm.reshape(-1, n)[: frames.webrtc.size]]
        assert frames.webrtc.any() and not frames.webrtc.all()
        np.testing.assert_array_equal(frames.webrtc[: len(own)], own)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [(dict(frame_s=0.025), "0.025"), (dict(aggressiveness=4), "aggressiveness"), (dict(min_silence_s=-1.0), "-1.0")],
)
def test_bad_vad_options_name_the_value(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        speech_regions(np.zeros(16000, np.float32), sample_rate=16000, **kwargs)


def test_multichannel_needs_a_downmix():
    with pytest.raises(ConfigError, match="downmix"):
        speech_regions(np.zeros((2, 16000), np.float32), sample_rate=16000)


# -- trim and pause compression -------------------------------------------------------
def test_trim_pads_and_reports():
    rate = 16000
    x = np.arange(10 * rate, dtype=np.float32)
    out, rep = trim(x, sample_rate=rate, regions=[(2.0, 3.0), (5.0, 6.5)], pad_s=0.25)
    assert (rep.start_s, rep.end_s, rep.speech_s) == (1.75, 6.75, 2.5)
    np.testing.assert_array_equal(out, x[int(1.75 * rate) : int(6.75 * rate)])
    edge, rep = trim(x, sample_rate=rate, regions=[(0.1, 9.95)], pad_s=0.25)
    assert (rep.start_s, rep.end_s) == (0.0, 10.0) and edge.size == x.size
    with pytest.raises(ConfigError, match="empty"):
        trim(x, sample_rate=rate, regions=[])
    with pytest.raises(ConfigError, match="sorted"):
        trim(x, sample_rate=rate, regions=[(3.0, 4.0), (1.0, 2.0)])


def test_compress_pauses_never_touches_speech():
    rate = 16000
    clean, known = speechlike.utterance(rate, phrases_s=(1.0, 1.0, 1.0), pauses_s=(3.0, 0.6), seed=50)
    out, count, removed = compress_pauses(clean, sample_rate=rate, regions=known, max_pause_s=1.0, keep_pause_s=0.5)
    assert count == 1 and removed == pytest.approx(2.5 + 0.01, abs=2 / rate)  # plus the crossfade overlap
    assert out.size == clean.size - round(removed * rate)
    shift = clean.size - out.size
    for i, (s, e) in enumerate(known):
        a, b = round(s * rate), round(e * rate)
        offset = 0 if i == 0 else shift
        np.testing.assert_array_equal(out[a - offset : b - offset], clean[a:b])


def test_trim_stage_compresses_long_pauses_unless_there_is_a_transcript():
    rate = 16000
    clean, _ = speechlike.utterance(rate, phrases_s=(1.5, 1.5), pauses_s=(3.0,), seed=51)
    (plain,) = run_stages(_clip(clean, rate), [Trim()])
    (kept,) = run_stages(_clip(clean, rate, transcript="two phrases"), [Trim()])
    (forced,) = run_stages(_clip(clean, rate, transcript="two phrases"), [Trim(compress_with_transcript=True)])
    assert plain.metrics["pauses_compressed"] == 1 and plain.metrics["pause_removed_s"] > 2.0
    assert kept.metrics["pauses_compressed"] == 0 and kept.duration_s > plain.duration_s + 2.0
    assert forced.metrics["pauses_compressed"] == 1
    assert Trim(max_pause_s=None).apply(_clip(clean, rate)).metrics["pauses_compressed"] == 0


def test_trim_stage_updates_the_span_in_the_source():
    rate = 16000
    clean, known = speechlike.utterance(rate, lead_s=2.0, tail_s=1.5, seed=52)
    (out,) = run_stages(_clip(clean, rate, offset_s=100.0), [Trim(pad_s=0.2)])
    lead, tail = 100.0 + known[0][0] - out.span_s[0], out.span_s[1] - (100.0 + known[-1][1])
    assert 0.15 <= lead <= 0.35 and 0.15 <= tail <= 0.35, (lead, tail)  # pad_s plus the detector's slack
    assert out.history[-1].stage == "trim"


def test_trim_stage_rejects_a_clip_without_speech():
    rate = 16000
    clip = _clip(0.01 * speechlike.colored_noise(2 * rate, seed=53), rate)
    (out,) = run_stages(clip, [Trim()])
    assert out.verdict == "rejected" and [f.code for f in out.findings] == ["speech.none"]
    assert out.audio is clip.audio and out.metrics["speech_s"] == 0.0


# -- slicing ----------------------------------------------------------------------------
def test_slice_bounds_cut_at_the_longest_pauses():
    # 8 regions of 4 s; the pauses after regions 2 and 5 are the longest.
    pauses = [0.3, 0.4, 2.0, 0.3, 0.5, 1.5, 0.3]
    regions, t = [], 1.0
    for p in [*pauses, 0.0]:
        regions.append((t, t + 4.0))
        t += 4.0 + p
    bounds = slice_bounds(regions, duration_s=t + 1.0, min_s=3.0, max_s=15.0, pad_s=0.2)
    assert len(bounds) == 3
    cuts = [(bounds[i][1], bounds[i + 1][0]) for i in range(2)]
    assert regions[2][1] <= cuts[0][0] <= cuts[0][1] <= regions[3][0]
    assert regions[5][1] <= cuts[1][0] <= cuts[1][1] <= regions[6][0]


def test_slice_bounds_never_cut_continuous_speech():
    assert slice_bounds([(1.0, 41.0)], duration_s=42.0, max_s=30.0) == [(0.8, 41.2)]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.floats(0.2, 12.0), min_size=1, max_size=30),
    pauses=st.lists(st.floats(0.25, 4.0), min_size=30, max_size=30),
    max_s=st.floats(8.0, 30.0),
)
def test_slice_bounds_invariants(lengths, pauses, max_s):
    regions, t = [], 0.5
    for length, pause in zip(lengths, pauses, strict=False):
        regions.append((t, t + length))
        t += length + pause
    duration = t
    bounds = slice_bounds(regions, duration_s=duration, min_s=3.0, max_s=max_s, pad_s=0.2)
    assert all(0.0 <= a < b <= duration for a, b in bounds)
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(bounds))
    for s, e in regions:  # every region lies inside exactly one slice: nothing cut, nothing lost
        assert sum(a <= s and e <= b for a, b in bounds) == 1
    for a, b in bounds:  # too long only when it is one unbroken region
        if b - a > max_s + 1e-9:
            assert sum(a <= s and e <= b for s, e in regions) == 1


def _long_recording(rate: int):
    phrases = (2.5, 4.0, 1.2, 3.0, 5.5, 2.0, 3.5, 6.0, 1.5, 4.5, 2.5, 3.0, 5.0, 2.0, 4.0, 3.0, 2.5, 6.0)
    pauses = (0.6, 1.8, 0.5, 0.7, 2.5, 0.4, 0.9, 1.2, 0.5, 3.0, 0.6, 0.8, 1.5, 0.5, 2.2, 0.7, 1.0)
    return speechlike.utterance(rate, phrases_s=phrases, pauses_s=pauses, seed=54)


def test_slice_stage_on_a_long_recording():
    rate = 16000
    clean, known = _long_recording(rate)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=55), 20.0)
    clip = _clip(noisy, rate, transcript="a long read", offset_s=10.0)
    slices = run_stages(clip, [Slice(min_s=3.0, max_s=15.0)])
    assert len(slices) >= 5
    assert [c.id for c in slices] == [f"rec-{k:03d}" for k in range(len(slices))]
    for piece in slices:
        a, b = piece.span_s[0] - 10.0, piece.span_s[1] - 10.0
        assert 3.0 <= b - a <= 15.0
        np.testing.assert_array_equal(piece.audio, noisy[round(a * rate) : round(a * rate) + piece.audio.size])
        assert piece.transcript is None and "transcript.dropped" in {f.code for f in piece.findings}
        assert piece.metrics["slice_count"] == len(slices) and piece.history[-1].stage == "slice"
    spans = [(c.span_s[0] - 10.0, c.span_s[1] - 10.0) for c in slices]
    for s, e in known:  # never mid-speech, nothing lost
        assert sum(a <= s and e <= b for a, b in spans) == 1, ((s, e), spans)


def test_trim_then_slice_keep_spans_in_source_time_and_list_the_cut_pauses():
    rate = 16000
    clean, known = _long_recording(rate)
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(known)]
    trimmed = Trim().apply(_clip(clean, rate, offset_s=10.0))
    assert trimmed.metrics["pauses_compressed"] >= 5
    slices = Slice(min_s=3.0, max_s=15.0).apply(trimmed)
    assert len(slices) >= 4 and any(c.pauses_cut_s for c in slices)
    for a, b in trimmed.pauses_cut_s:  # a cut pause is inside a slice (and listed there) or between slices
        for c in slices:
            inside = c.span_s[0] < a and b < c.span_s[1]
            assert inside == ((a, b) in c.pauses_cut_s) and (inside or b <= c.span_s[0] or a >= c.span_s[1])
    for clip in (trimmed, *slices):
        start, end = clip.span_s[0] - 10.0, clip.span_s[1] - 10.0
        cuts = [(a - 10.0, b - 10.0) for a, b in clip.pauses_cut_s]
        for a, b in cuts:  # inside the span, inside a known pause longer than Trim's max_pause_s
            assert start < a < b < end
            assert any(p0 < a and b < p1 and p1 - p0 > 1.0 for p0, p1 in pauses), ((a, b), pauses)
        assert (end - start) - sum(b - a for a, b in cuts) == pytest.approx(clip.duration_s, abs=1.5 / rate)
        # the audio is the source over the span without the cut pauses
        keep, pos = [], start
        for a, b in (*cuts, (end, end)):
            keep.append(clean[round(pos * rate) : round(a * rate)])
            pos = b
        expected = np.concatenate(keep)
        assert abs(expected.size - clip.audio.size) <= 1
        n = min(expected.size, clip.audio.size)
        corr = np.dot(expected[:n], clip.audio[:n]) / (np.linalg.norm(expected[:n]) * np.linalg.norm(clip.audio[:n]))
        assert corr > 0.99, (clip.id, corr)
    spans = [(c.span_s[0] - 10.0, c.span_s[1] - 10.0) for c in slices]
    for s, e in known:  # every phrase in exactly one slice, in source time
        assert sum(a <= s and e <= b for a, b in spans) == 1, ((s, e), spans)


def test_slice_stage_on_the_fixtures(demo):
    """The alice fixtures end to end make a ~70 s recording with known sentence positions."""
    rate = 22050
    parts, known, pos = [], [], 0.0
    for name in DEMO_FILES[:6]:
        audio, native, regions = demo[name]
        audio = resample(audio, sample_rate=native, target_sample_rate=rate)
        parts.append(audio)
        known += [(pos + s, pos + e) for s, e in regions]
        pos += audio.size / rate
    recording = np.concatenate(parts)
    slices = Slice(min_s=3.0, max_s=20.0).apply(_clip(recording, rate))
    spans = [c.span_s for c in slices]
    assert len(slices) >= 4 and all(b - a <= 20.0 for a, b in spans)
    for s, e in known:
        assert sum(a <= s and e <= b for a, b in spans) == 1, ((s, e), spans)


def test_short_recording_is_one_slice_and_keeps_its_transcript():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=56)
    clip = _clip(clean, rate, transcript="hello")
    (only,) = Slice().apply(clip)
    assert only is clip  # no longer than max_s: passes through untouched (same id, transcript kept)
    assert only.transcript == "hello" and only.id == "rec" and only.verdict == "approved"


def test_slice_stage_rejects_no_speech():
    rate = 16000
    (out,) = Slice(max_s=4.0).apply(_clip(np.zeros(5 * rate, np.float32), rate))
    assert out.verdict == "rejected" and [f.code for f in out.findings] == ["speech.none"]


def test_bad_slice_options():
    with pytest.raises(ConfigError, match="min_s"):
        slice_bounds([(0.0, 1.0)], duration_s=2.0, min_s=10.0, max_s=5.0)


# -- speech regions carried on the clip ------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.booleans(), max_size=300),
    st.sampled_from([0.01, 0.02, 0.03]),
    st.floats(0.0, 0.999),
)
def test_regions_to_mask_inverts_mask_to_regions(bits, frame_s, last_fraction):
    mask = np.array(bits, bool)
    # the last frame may be partial: the signal ends inside it
    duration = max(0.0, (mask.size - 1 + max(last_fraction, 0.01)) * frame_s) if mask.size else 0.0
    regions = mask_to_regions(mask, frame_s=frame_s, duration_s=duration)
    np.testing.assert_array_equal(regions_to_mask(regions, frame_s=frame_s, duration_s=duration), mask)


def test_regions_to_mask_by_frame_middles():
    got = regions_to_mask([(0.05, 0.1), (0.31, 0.33)], frame_s=0.1, duration_s=0.35)
    # frames [0, .1) mid .05 (in), [.1, .2) mid .15, [.2, .3) mid .25, [.3, .35) mid .325 (in)
    np.testing.assert_array_equal(got, [True, False, False, True])
    with pytest.raises(ConfigError, match="frame_s"):
        regions_to_mask([], frame_s=0.0, duration_s=1.0)


def test_trim_carries_the_speech_through_compressed_pauses():
    rate = 16000
    clean, known = speechlike.utterance(rate, phrases_s=(1.0, 1.2, 0.8), pauses_s=(3.0, 0.6), lead_s=1.0, seed=60)
    (out,) = run_stages(_clip(clean, rate), [Trim(pad_s=0.2, max_pause_s=1.0)])
    assert out.metrics["pauses_compressed"] == 1 and out.speech is not None
    # the regions it carries are where speech is in the trimmed audio, as a fresh detection finds it
    fresh = speech_regions(out.audio, sample_rate=rate)
    assert len(out.speech) == len(fresh) == len(known)
    for (s, e), (fs, fe) in zip(out.speech, fresh, strict=True):
        assert abs(s - fs) <= 0.04 and abs(e - fe) <= 0.04, (out.speech, fresh)
    assert sum(e - s for s, e in out.speech) == pytest.approx(out.metrics["speech_s"], abs=1e-9)


def test_slice_gives_each_piece_its_speech():
    rate = 16000
    clean, _ = _long_recording(rate)
    slices = run_stages(_clip(clean, rate), [Slice(min_s=3.0, max_s=15.0)])
    for piece in slices:
        assert piece.speech is not None
        assert sum(e - s for s, e in piece.speech) == pytest.approx(piece.metrics["speech_s"], abs=1e-9)
        assert all(0.0 <= s < e <= piece.duration_s + 1e-9 for s, e in piece.speech)
        fresh = speech_regions(piece.audio, sample_rate=rate)
        assert _overlap((0.0, piece.duration_s), fresh) == pytest.approx(piece.metrics["speech_s"], abs=0.3)


def test_run_stages_drops_regions_a_stage_may_have_invalidated():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=61)
    clip = dataclasses.replace(_clip(clean, rate), speech=((0.5, 1.0),))

    class Reverse:  # moves the speech, and says so
        name = "reverse"
        changes = frozenset({"audio", "timing"})

        def apply(self, c):
            return dataclasses.replace(c, audio=np.ascontiguousarray(c.audio[::-1]))

    class Gain:
        name = "gain"
        changes = frozenset({"audio"})

        def apply(self, c):
            return dataclasses.replace(c, audio=c.audio * np.float32(0.5))

    class Peek:  # reads only: same audio
        name = "peek"
        changes = frozenset()
        metrics = (Metric("peeked", "", "whether it looked", ("peek",), "process", "bool"),)  # its own metric

        def apply(self, c):
            return c.with_metrics(peeked=True)

    assert run_stages(clip, [Reverse()])[0].speech is None
    assert run_stages(clip, [Gain()])[0].speech == ((0.5, 1.0),)
    assert run_stages(clip, [Peek()])[0].speech == ((0.5, 1.0),)
    assert "speech" not in run_stages(clip, [Gain()])[0].to_dict()  # never serialised


def test_webrtc_decisions_without_the_c_module_are_the_same(monkeypatch):
    # Where webrtcvad's C module is not importable as _webrtcvad (and so neither is its C function for the
    # compiled loop), Vad.is_speech gives the same flags.
    import prep.dsp.vad as vad_module

    rate = 16000
    x = np.concatenate([speechlike.utterance(rate, seed=s)[0] for s in (60, 61, 62)])
    x = x + np.random.default_rng(4).normal(0, 0.003, x.size).astype(np.float32)
    direct = vad_frames(x, sample_rate=rate)
    monkeypatch.setattr(vad_module, "_compiled", False)
    monkeypatch.setattr(vad_module, "_c_process", None)
    public = vad_frames(x, sample_rate=rate)
    assert direct.webrtc.any() and not direct.webrtc.all()
    np.testing.assert_array_equal(direct.webrtc, public.webrtc)


# -- the compiled webrtcvad loop (prep.kernels.vad) against the Python loop -------------------
def _vad_cases(rate: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(rate)
    speech = np.concatenate([speechlike.utterance(rate, seed=s)[0] for s in (70, 71)])
    return {
        "speech in noise": speech + rng.normal(0, 0.003, speech.size).astype(np.float32),
        "clipped speech": np.clip(speech * 40, -1, 1).astype(np.float32),  # gain capped, rows at full scale
        "full scale": np.sign(rng.standard_normal(2 * rate)).astype(np.float32),
        "silence": np.zeros(rate + 7, np.float32),
        "noise": rng.normal(0, 0.05, 2 * rate + 3).astype(np.float32),
    }


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_compiled_webrtc_loop_equals_the_python_loop(monkeypatch, rate):
    from prep.kernels import vad as kernel

    import prep.dsp.vad as vad_module

    assert kernel.AVAILABLE  # webrtcvad-wheels exports WebRtcVad_Process: the compiled loop runs here
    flagged = 0
    for name, x in _vad_cases(rate).items():
        for frame_s in (0.01, 0.02, 0.03):
            for mode in (0, 1, 2, 3):
                monkeypatch.setattr(vad_module, "_compiled", True)
                compiled = vad_frames(x, sample_rate=rate, frame_s=frame_s, aggressiveness=mode)
                monkeypatch.setattr(vad_module, "_compiled", False)
                python = vad_frames(x, sample_rate=rate, frame_s=frame_s, aggressiveness=mode)
                for field in dataclasses.fields(compiled):
                    np.testing.assert_array_equal(
                        getattr(compiled, field.name), getattr(python, field.name), err_msg=(name, frame_s, mode)
                    )
                flagged += int(compiled.webrtc.sum())
                if name == "silence":
                    assert not compiled.webrtc.any()
    assert flagged > 0


def test_to_pcm_is_numpys_level_normalisation():
    from prep.kernels.vad import to_pcm

    rng = np.random.default_rng(5)
    row = np.concatenate([
        rng.normal(0, 0.3, 4000),
        [0.0, -0.0, 1.0, -1.0, 0.5 / 3000, -0.5 / 3000, 1.5 / 3000, 2.5 / 3000, -2.5 / 3000],  # rounding vs truncation
        [32767.5 / 3000, 32768.0 / 3000, -32768.0 / 3000, -32768.9 / 3000, -32769.5 / 3000, 1e30, -1e30],
        [np.inf, -np.inf, np.nan, 1e-45, -1e-45],
    ]).astype(np.float32)
    for gain in (np.float32(3000.0), np.float32(1.0), np.float32(1e-3), np.float32(32768.0 * 316.2)):
        pcm = np.empty(row.size, np.int16)
        to_pcm(row, gain, pcm)
        with np.errstate(invalid="ignore"):  # NaN to int16: 0 on x86-64 and arm64
            expected = np.clip(row * gain, -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(pcm, expected)


def test_compiled_loop_stops_on_a_webrtcvad_error():
    import webrtcvad
    from prep.kernels.vad import webrtc_flags

    from prep.dsp.vad import _vad_handle

    vad = webrtcvad.Vad(3)
    handle = _vad_handle(vad)
    assert handle is not None
    frames = np.ones((4, 480), np.float32)
    out = np.zeros(4, bool)
    assert webrtc_flags(frames, 4, np.float32(1000.0), handle, 16000, out) == 0
    assert webrtc_flags(frames, 4, np.float32(1000.0), handle, 11025, out) == -1  # not a webrtcvad rate
    assert _vad_handle(object()) is None  # another build's Vad: the Python loop


_CACHE_PROBE = """
import json, numpy as np, webrtcvad
from prep.dsp.vad import _vad_handle
from prep.kernels.vad import webrtc_flags
x = np.sin(np.arange(480 * 50, dtype=np.float32) * np.float32(0.05)).reshape(50, 480)
vad = webrtcvad.Vad(3)
out = np.zeros(50, bool)
webrtc_flags(x, 50, np.float32(8000.0), _vad_handle(vad), 16000, out)
print(json.dumps([sum(webrtc_flags.stats.cache_hits.values()), sum(webrtc_flags.stats.cache_misses.values()),
                  out.tolist()]))
"""


def test_compiled_loop_is_loaded_from_numbas_cache_in_a_new_process(tmp_path):
    # The C function is called by a symbol name, not a ctypes pointer: numba can cache the kernel, so a
    # worker loads it instead of compiling it.
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1])
        for _ in range(2)
    ]
    (hits1, misses1, flags1), (hits2, misses2, flags2) = runs
    assert (hits1, misses1) == (0, 1)  # compiled, then written to the empty cache
    assert (hits2, misses2) == (1, 0)  # loaded from it
    assert flags1 == flags2 and any(flags1)
