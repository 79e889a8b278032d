"""Decoding real files made by ffmpeg/libsndfile (fixtures/make_fixtures.py)."""

from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest
import soxr

from prep.clip import file_sha256
from prep.errors import DecodeError
from prep.run.decode import load, probe
from prep.run.decode import stream as stream_blocks

SOURCE_RATE = 22050
SOURCE_S = 3.0

# name -> (channels, decoded sample rate, codec frame in samples at that rate)
CASES = {
    "source.wav": (1, 22050, 1),
    "pcm24.wav": (1, 22050, 1),
    "pcm32.wav": (1, 22050, 1),
    "float32.wav": (1, 22050, 1),
    "u8.wav": (1, 22050, 1),
    "flac.flac": (1, 22050, 1),
    "stereo.flac": (2, 22050, 1),
    "mp3.mp3": (1, 22050, 1152),
    "m4a.m4a": (1, 22050, 1024),
    "stereo.m4a": (2, 22050, 1024),
    "aac.aac": (1, 22050, 2048),  # raw ADTS carries no priming info: one frame late, one frame longer
    "ogg.ogg": (1, 22050, 2048),
    "opus.opus": (1, 48000, 960),
    "opus_in_ogg.ogg": (1, None, 960),  # libsndfile picks its own Opus output rate
}


@pytest.fixture(scope="module")
def source(formats_dir):
    audio, rate = load(formats_dir / "source.wav")
    assert rate == SOURCE_RATE
    return audio[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_format_decodes_to_right_shape_rate_duration_and_content(formats_dir, source, name):
    channels, rate_expected, frame = CASES[name]
    audio, rate = load(formats_dir / name)
    assert audio.dtype == np.float32
    assert audio.flags.c_contiguous
    assert audio.ndim == 2 and audio.shape[0] == channels
    if rate_expected is not None:
        assert rate == rate_expected
    assert abs(audio.shape[1] - SOURCE_S * rate) <= frame
    mono = audio[0] if rate == SOURCE_RATE else soxr.resample(audio[0], rate, SOURCE_RATE)
    # cross-correlation lag search, coarse then fine: find codec delay
    xc = np.correlate(mono[: 20000], source[: 20000 - 4096], mode="valid")
    lag = int(np.argmax(xc))
    n = min(len(mono) - lag, len(source))
    corr = float(np.corrcoef(mono[lag : lag + n], source[:n])[0, 1])
    assert corr >= 0.99, f"{name}: correlation {corr:.4f} at lag {lag}"


@pytest.mark.parametrize("name", ["mp3.mp3", "m4a.m4a", "opus.opus", "ogg.ogg", "stereo.flac", "pcm24.wav"])
def test_probe_reports_format_without_decoding(formats_dir, name):
    info = probe(formats_dir / name)
    channels, rate_expected, _ = CASES[name]
    assert info.channels == channels
    assert info.sample_rate == rate_expected
    assert info.duration_s == pytest.approx(SOURCE_S, abs=0.1)
    assert info.codec


def test_probe_codec_names(formats_dir):
    assert probe(formats_dir / "mp3.mp3").codec == "mp3"
    assert probe(formats_dir / "m4a.m4a").codec == "aac"
    assert probe(formats_dir / "opus.opus").codec == "opus"
    assert probe(formats_dir / "ogg.ogg").codec == "vorbis"
    assert probe(formats_dir / "pcm24.wav").codec == "pcm_s24"
    assert probe(formats_dir / "flac.flac").format == "flac"


def test_pcm_variants_agree_exactly_enough(formats_dir, source):
    for name, tol in (("pcm24.wav", 1e-4), ("pcm32.wav", 1e-4), ("float32.wav", 1e-4), ("u8.wav", 2 / 128)):
        audio, _ = load(formats_dir / name)
        assert np.max(np.abs(audio[0] - source)) <= tol, name


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not audio\n" * 50), "not a readable audio file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
    ],
    ids=["empty", "text-as-wav", "directory", "missing"],
)
def test_bad_inputs_raise_decode_error_naming_file_and_cause(tmp_path, make, cause):
    path = tmp_path / "bad input.wav"
    make(path)
    with pytest.raises(DecodeError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and cause in message
    assert "\n" not in message


def test_header_only_wav(tmp_path):
    path = tmp_path / "header.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    with pytest.raises(DecodeError, match="no audio samples"):
        load(path)


def test_corrupt_mp3(fixtures_dir):
    with pytest.raises(DecodeError, match=r"corrupt\.mp3: not a readable audio file"):
        load(fixtures_dir / "bad" / "corrupt.mp3")


def test_truncated_m4a_and_mp3_decode_partially_or_fail_cleanly(tmp_path, formats_dir):
    for name in ("m4a.m4a", "mp3.mp3"):
        data = (formats_dir / name).read_bytes()
        cut = tmp_path / name
        cut.write_bytes(data[: len(data) // 2])
        try:
            audio, rate = load(cut)
        except DecodeError as err:
            assert name in str(err)
        else:
            assert 0 < audio.shape[1] < SOURCE_S * rate + 2048


def test_wrong_extension_still_decodes_by_content(tmp_path, formats_dir):
    disguised = tmp_path / "really_mp3.wav"
    shutil.copy(formats_dir / "mp3.mp3", disguised)
    audio, rate = load(disguised)
    assert rate == 22050 and abs(audio.shape[1] - 3.0 * rate) <= 1152


def test_decoding_does_not_modify_input(formats_dir):
    before = {p.name: file_sha256(p) for p in formats_dir.iterdir()}
    for p in formats_dir.iterdir():
        load(p)
    after = {p.name: file_sha256(p) for p in formats_dir.iterdir()}
    assert before == after


@pytest.mark.parametrize("name", ["m4a.m4a", "stereo.m4a", "aac.aac", "opus.opus"])
def test_ffmpeg_path_is_every_decoded_frame_in_order(formats_dir, name):
    """The FFmpeg path's buffers hold each frame's samples, in order, cut at the container's duration."""
    import av

    with av.open(str(formats_dir / name)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        assert {f.format.name for f in frames} == {"fltp"}  # what the path converts to: no conversion here
        rate = stream.codec_context.sample_rate
        expected = round(float(stream.duration * stream.time_base) * rate) if stream.duration is not None else None
    whole = np.concatenate([f.to_ndarray() for f in frames], axis=1)
    if expected is not None and 0 < whole.shape[1] - expected <= 2048:  # encoder padding at the end
        whole = whole[:, :expected]
    audio, got_rate = load(formats_dir / name)
    assert got_rate == rate
    np.testing.assert_array_equal(audio, whole)
    sample_rate, blocks = stream_blocks(formats_dir / name, block_frames=1000)
    parts = list(blocks)
    assert sample_rate == rate
    assert all(p.shape[1] == 1000 for p in parts[:-1]) and 0 < parts[-1].shape[1] <= 1000 + 2048
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


@pytest.mark.parametrize(("fmt", "suffix"), [("WAV", ".wav"), ("WAVEX", ".wav"), ("AIFF", ".aiff"), ("W64", ".w64")])
def test_16_bit_pcm_reads_as_libsndfile_converts_it(tmp_path, fmt, suffix):
    """Every 16-bit value, two channels: the samples are libsndfile's own float conversion, exactly."""
    import soundfile as sf

    values = np.arange(-32768, 32768, dtype=np.int16)
    ints = np.stack([values, values[::-1]], axis=1)  # (frames, channels)
    path = tmp_path / f"all{suffix}"
    sf.write(path, ints, 16000, subtype="PCM_16", format=fmt)
    audio, rate = load(path)
    reference = sf.read(path, dtype="float32", always_2d=True)[0].T
    assert rate == 16000 and audio.dtype == np.float32 and audio.flags.c_contiguous
    np.testing.assert_array_equal(audio, reference)
    assert audio[0, 0] == -1.0 and audio[0, -1] == np.float32(32767 / 32768)
