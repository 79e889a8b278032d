"""Long files: streamed in two passes and cut at pauses, never decoded whole."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import soundfile as sf

from prep.run.decode import load, stream
from prep.run.longform import RESTART, LongForm, OnePass, _mix, cut_points, pieces, scan
from prep.run.profiles import get_profile
from prep.run.run_folder import RunFolder
from prep.run.runner import Job, SerialExecutor, process_job, run_jobs

RATE = 22050


@pytest.fixture(scope="module")
def long_stereo(tmp_path_factory, demo_dir, truth):
    """About 70 s of demo speech, stereo with the right channel inverted; known speech regions."""
    parts, regions, pos = [], [], 0.0
    for name in ("alice/a01.wav", "alice/a02.flac", "alice/a06.ogg", "bob/b05.ogg", "bob/b03.mp3",
                 "alice/a03.mp3", "bob/b04.m4a"):
        audio, rate = load(demo_dir / name)
        assert rate == RATE
        parts.append(audio[0])
        regions += [(pos + a, pos + b) for a, b in truth[name]["speech_regions_s"]]
        pos += audio.shape[1] / rate
    mono = np.concatenate(parts)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.stack([mono, -mono]).T, RATE, subtype="PCM_16")
    return path, mono, regions


def test_stream_yields_the_same_samples_as_load(demo_dir):
    for name in ("bob/b01.wav", "alice/a04.m4a", "alice/a05.opus", "alice/a03.mp3"):
        whole, rate = load(demo_dir / name)
        rate2, blocks = stream(demo_dir / name, block_frames=7777)
        joined = np.concatenate(list(blocks), axis=1)
        assert rate2 == rate
        np.testing.assert_allclose(joined, whole, atol=1e-6)  # libmpg123 rounds block reads differently


def test_scan_decides_downmix_from_the_whole_file(long_stereo):
    path, mono, _ = long_stereo
    fscan = scan(str(path), dead_channel_db=40.0, inverted_corr=0.3, block_s=3.0)
    assert fscan.report is not None and fscan.report.inverted == (1,)
    assert fscan.n_samples == mono.size
    frame = round(0.05 * RATE)
    k = mono.size // frame
    expected = 10 * np.log10(np.mean(mono[: k * frame].astype(np.float64).reshape(k, frame) ** 2, axis=1) + 1e-30)
    finite = np.isfinite(fscan.frame_db[:k]) & (expected > -100)
    np.testing.assert_allclose(fscan.frame_db[:k][finite], expected[finite], atol=0.05)


def test_cut_points_respect_lengths_and_skip_silence():
    frames = np.full(2400, -30.0)  # 120 s of "speech" at 50 ms
    frames[900:906] = -90.0  # a pause at 45 s
    frames[1500:] = -np.inf  # 45 s of digital silence at the end
    bounds = cut_points(frames, min_piece_s=20.0, max_piece_s=50.0)
    assert bounds[0] == (0.0, pytest.approx(45.15, abs=0.2))
    for a, b in bounds:
        assert b - a <= 50.0 + 1e-9
    assert bounds[-1][1] <= 1500 * 0.05 + 50.0
    assert all(b <= 120.0 for _, b in bounds)
    assert cut_points(np.full(100, -np.inf), min_piece_s=1.0, max_piece_s=2.0) == []


def test_long_file_becomes_pieces_without_losing_speech(tmp_path, long_stereo):
    path, _, regions = long_stereo
    config = LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0, block_s=2.0)
    # alice and bob take turns in this file: diarisation (tests/test_diarise.py) would keep one voice
    stages = get_profile("fish").configure("diarise", model="").stages
    clips = process_job(Job(str(path), "spk", transcript="the whole read"), stages, out_dir=tmp_path, longform=config)
    assert len(clips) >= 4
    assert all(c.verdict != "error" for c in clips), [c.reasons for c in clips]
    for clip in clips:  # the inverted channel is noted; the file's transcript cannot follow the pieces
        codes = {f.code for f in clip.findings}
        assert {"downmix.inverted", "transcript.dropped"} <= codes, codes
        assert clip.transcript is None
    assert all(c.metrics["downmix_mode"] == "polarity_corrected" for c in clips)
    assert all(c.history[0].stage == "downmix" for c in clips)
    spans = sorted(c.span_s for c in clips)
    pieces = sorted({(c.metrics["piece_index"], c.span_s) for c in clips if "piece_index" in c.metrics})
    assert pieces
    # every second of known speech lies inside some clip's span: no speech lost at the cuts
    for a, b in regions:
        covered = sum(max(0.0, min(b, hi) - max(a, lo)) for lo, hi in spans)
        assert covered >= 0.97 * (b - a), (a, b)
    for clip in clips:
        audio, _rate = sf.read(str(tmp_path / clip.output), dtype="float32")
        assert audio.ndim == 1 and audio.size > 0
        # each piece's clip has its source-span preview for the report, as long as its span
        preview = RunFolder(tmp_path).preview_path(clip.speaker, clip.id)
        assert sf.info(str(preview)).duration == pytest.approx(clip.span_s[1] - clip.span_s[0], abs=0.03)


def test_silent_long_file_is_one_rejected_clip(tmp_path):
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(8000 * 90, np.int16), 8000)
    clips = process_job(Job(str(path), "spk"), get_profile("fish").stages, out_dir=tmp_path,
                        longform=LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0))
    assert len(clips) == 1 and clips[0].verdict == "rejected"
    (found,) = clips[0].findings
    assert (found.code, found.severity, found.value) == ("longform.silent", "reject", 90.0)
    assert "no signal" in found.message and "90 s" in found.message


@pytest.mark.parametrize("name", ["alice/a01.wav", "alice/a04.m4a", "alice/a05.opus", "bob/b02.flac"])
def test_load_span_equals_a_slice_of_the_whole(demo_dir, name):
    from prep.run.decode import load_span

    whole, rate = load(demo_dir / name)
    part, rate2 = load_span(demo_dir / name, 1.5, 4.25)
    assert rate2 == rate
    i0, i1 = int(1.5 * rate), int(np.ceil(4.25 * rate))
    np.testing.assert_allclose(part, whole[:, i0:i1], atol=1e-6)
    empty, _ = load_span(demo_dir / name, 999.0, 1000.0)
    assert empty.shape[1] == 0


# -- pieces of one long file in parallel (runner) --------------------------------------------------------------
_PIECES = LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0, block_s=2.0)


def _lean(name: str = "fish"):
    """The profile with the model-based extras off: the runner, not DNSMOS or the voice model, is tested here."""
    profile = get_profile(name).configure("measure_input", mos=False).configure("score", mos=False)
    return profile.configure("voice", model="").stages


class _CountingExecutor(SerialExecutor):
    """In-process; counts the tasks by function name, and can stop the run at the n-th piece (a Ctrl-C)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.tasks: list[str] = []
        self.interrupt_at = interrupt_at

    def submit(self, fn, /, *args, **kwargs):
        self.tasks.append(fn.__name__)
        if self.interrupt_at is not None and self.tasks.count("process_piece") == self.interrupt_at:
            raise KeyboardInterrupt
        return super().submit(fn, *args, **kwargs)


def test_pieces_of_one_long_file_run_in_parallel_with_the_serial_result(tmp_path, long_stereo):
    path, _, _ = long_stereo
    jobs = [Job(str(path), "spk")]
    stages = _lean()
    counting = _CountingExecutor()
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial", longform=_PIECES, executor=counting)
    assert counting.tasks.count("process_piece") >= 4 and "process_job" not in counting.tasks  # one task per piece
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "pool", longform=_PIECES, executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    # the same clips as the one-process path (voiceprep check), and every clip journaled once
    alone = process_job(jobs[0], stages, longform=_PIECES, out_dir=tmp_path / "alone")
    assert [c.id for c in serial] == sorted(c.id for c in alone)
    journal = RunFolder(tmp_path / "pool").read_journal()
    assert sorted(r.clip.id for r in journal) == [c.id for c in serial]


def test_a_long_file_is_journaled_only_when_all_its_pieces_are_done(tmp_path, long_stereo):
    path, _, _ = long_stereo
    jobs = [Job(str(path), "spk")]
    stages = _lean()
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, stages, out_dir=out, longform=_PIECES, executor=_CountingExecutor(interrupt_at=3))
    assert RunFolder(out).read_journal() == [], "two pieces were done, the file was not"
    resumed = run_jobs(jobs, stages, out_dir=out, longform=_PIECES)
    assert len(RunFolder(out).read_journal()) == len(resumed)
    again = _CountingExecutor()
    done = run_jobs(jobs, stages, out_dir=out, longform=_PIECES, executor=again)
    assert [c.to_dict() for c in done] == [c.to_dict() for c in resumed]
    assert again.tasks == [], "a finished long file is not redone"


# -- one streamed pass ---------------------------------------------------------------------------------------------
def _two_pass(path, config):
    """The pieces by the definition: the whole file scanned first, then cut (scan, cut_points, pieces)."""
    fscan = scan(str(path), dead_channel_db=40.0, inverted_corr=0.3, block_s=config.block_s)
    bounds = cut_points(fscan.frame_db, min_piece_s=config.min_piece_s, max_piece_s=config.max_piece_s)
    return fscan, bounds, list(pieces(str(path), fscan, bounds, block_s=config.block_s))


def _one_pass(path, config):
    onepass = OnePass(str(path), dead_channel_db=40.0, inverted_corr=0.3, config=config)
    return onepass, list(onepass)


def test_one_pass_hands_out_the_two_pass_pieces_before_the_file_is_read(long_stereo):
    path, _, _ = long_stereo
    config = LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0, block_s=3.0)  # not whole frames
    fscan, bounds, expected = _two_pass(path, config)
    onepass, items = _one_pass(path, config)
    assert RESTART not in items and not onepass.restarted
    assert onepass.bounds == bounds and onepass.fscan.n_samples == fscan.n_samples
    np.testing.assert_array_equal(onepass.fscan.frame_db, fscan.frame_db)
    assert [(a, b) for a, b, _, _ in items] == [(a, b) for a, b, _ in expected]
    for (_, _, mono, report), (_, _, want) in zip(items, expected, strict=True):
        np.testing.assert_array_equal(mono, want)
        assert report.inverted == (1,)
    # handed out while reading: the first piece comes before the scan of the whole file exists
    onepass = OnePass(str(path), dead_channel_db=40.0, inverted_corr=0.3, config=config)
    first = next(iter(onepass))
    assert first[:2] == (expected[0][0], expected[0][1]) and onepass.fscan is None


def test_mixing_a_piece_lets_go_of_the_blocks_it_used_up():
    # OnePass holds the decoded blocks from the last cut on; those a piece used up must be freed while the
    # piece is handed on (the parent may then wait for a worker), not kept alive by an empty view.
    blocks = [(i * 100, np.full((2, 100), i, np.float32)) for i in range(5)]
    piece = _mix(blocks, 50, 250, None)  # a mono file's first channel
    np.testing.assert_array_equal(piece, np.repeat(np.arange(3, dtype=np.float32), [50, 100, 50]))
    for _, block in blocks[:2]:
        assert block.size == 0 and block.base is None
    assert [b.shape for _, b in blocks[2:]] == [(2, 100)] * 3  # still needed by the next piece


@pytest.fixture(scope="module")
def late_second_channel(tmp_path_factory, long_stereo):
    """The demo speech in stereo, the right channel silent (dead) for the first 40 s, then a copy of the left."""
    _, mono, _ = long_stereo
    right = mono.copy()
    right[: 40 * RATE] = 0.0
    path = tmp_path_factory.mktemp("late") / "late.flac"
    sf.write(path, np.stack([mono, right]).T, RATE, subtype="PCM_16")
    return path


def test_one_pass_restarts_when_the_whole_file_decides_otherwise(late_second_channel):
    config = LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0, block_s=2.0)
    fscan, _, expected = _two_pass(late_second_channel, config)
    assert fscan.report.dead == ()  # the whole file: two live channels, averaged
    onepass, items = _one_pass(late_second_channel, config)
    assert onepass.restarted and items.count(RESTART) == 1
    handed = items.index(RESTART)
    assert handed >= 1 and all(report.dead == (1,) for _, _, _, report in items[:handed])  # mixed as mono at first
    after = items[handed + 1 :]
    assert [(a, b) for a, b, _, _ in after] == [(a, b) for a, b, _ in expected]
    for (_, _, mono, _), (_, _, want) in zip(after, expected, strict=True):
        np.testing.assert_array_equal(mono, want)


def test_void_pieces_leave_nothing_behind_serial_or_parallel(tmp_path, late_second_channel):
    jobs = [Job(str(late_second_channel), "spk")]
    stages = _lean()
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial", longform=_PIECES)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "pool", longform=_PIECES, executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    assert serial and all(c.metrics["downmix_mode"] == "average" for c in serial)
    alone = process_job(jobs[0], stages, longform=_PIECES, out_dir=tmp_path / "alone")
    assert [c.to_dict() for c in sorted(alone, key=lambda c: c.id)] == [c.to_dict() for c in serial]
    for name in ("serial", "pool"):
        folder = RunFolder(tmp_path / name)
        written = sorted(p.name for p in folder.clips_dir.rglob("*.wav"))
        assert written == sorted(f"{c.id}.wav" for c in serial if c.output), name  # none of the void pieces' clips
        assert not list(folder.root.glob(".*.tmp")), "piece files are deleted once read"
