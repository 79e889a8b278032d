"""prep.io: 16-bit WAVs are the bytes libsndfile writes from float; writes are atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from prep.errors import OutputError
from prep.io import _atomic_file, write_bytes_atomic, write_wav_atomic


def _every_step() -> np.ndarray:
    """Every 16-bit value, points between them (1/4, 1/2, 3/4, a hair below the next), beyond full scale."""
    k = np.arange(-32768, 32768, dtype=np.float64)
    x = np.concatenate([k, k + 0.25, k + 0.5, k + 0.75, k + 1 - 1e-5, k + 1 - 4e-6]) / 32768.0
    extra = [1.0, -1.0, 1.2, -1.2, 3e-10, -3e-10, -0.0, 0.99999, -0.99999]
    return np.concatenate([x[(x >= -1.0) & (x <= 1.0)], extra]).astype(np.float32)


def test_pcm16_wav_is_what_soundfile_writes_from_float(tmp_path):
    x = _every_step()
    write_wav_atomic(tmp_path / "ours.wav", x, sample_rate=16000)
    sf.write(str(tmp_path / "ref.wav"), x, 16000, subtype="PCM_16", format="WAV")
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()
    ours = sf.read(str(tmp_path / "ours.wav"), dtype="int16")[0]
    assert ours[-9:].tolist() == [32767, -32768, 32767, -32768, 0, -1, 0, 32767, -32768]


def test_pcm16_stereo_wav_is_what_soundfile_writes_from_float(tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 48000)) * 0.3).astype(np.float32)
    write_wav_atomic(tmp_path / "ours.wav", x, sample_rate=48000)
    sf.write(str(tmp_path / "ref.wav"), x.T, 48000, subtype="PCM_16", format="WAV")
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()
    assert sf.info(str(tmp_path / "ours.wav")).channels == 2


def test_other_subtypes_are_written_by_soundfile(tmp_path):
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    write_wav_atomic(tmp_path / "f.wav", x, sample_rate=8000, subtype="FLOAT")
    back, rate = sf.read(str(tmp_path / "f.wav"), dtype="float32")
    assert rate == 8000 and np.array_equal(back, x)


def test_pcm16_rounding_near_steps_is_libsndfiles(tmp_path):
    # just below a step rounds up to it, just below half-way rounds down: libsndfile's 32-bit rounding then shift
    x = np.array([9.999994, -11.000008, 10.999, 10.5, -10.25, 107.99999], np.float32) / np.float32(32768)
    write_wav_atomic(tmp_path / "ours.wav", x, sample_rate=8000)
    assert sf.read(str(tmp_path / "ours.wav"), dtype="int16")[0].tolist() == [10, -11, 10, 10, -11, 108]


def test_pcm16_wav_header_is_libsndfiles_for_any_length_rate_and_channels(tmp_path):
    rng = np.random.default_rng(5)
    for rate, shape in ((8000, (0,)), (44100, (1,)), (22050, (777,)), (96000, (2, 0)), (11025, (2, 3)),
                        (48000, (2, 4801)), (44100, (3, 100))):
        x = (rng.standard_normal(shape) * 0.4).astype(np.float32)
        write_wav_atomic(tmp_path / "ours.wav", x, sample_rate=rate)
        sf.write(str(tmp_path / "ref.wav"), x.T, rate, subtype="PCM_16", format="WAV")
        assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes(), (rate, shape)


def test_atomic_writes_replace_whole_files_with_the_usual_mode_and_leave_no_temp(tmp_path):
    dst = tmp_path / "sub" / "clip.wav"
    write_wav_atomic(dst, np.zeros(100, np.float32), sample_rate=8000)
    write_wav_atomic(dst, np.full(50, 0.5, np.float32), sample_rate=8000)
    assert sf.read(str(dst), dtype="int16")[0].tolist() == [16384] * 50
    mask = os.umask(0)
    os.umask(mask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~mask
    write_bytes_atomic(tmp_path / "sub" / "a.bin", b"old")
    try:
        with _atomic_file(tmp_path / "sub" / "a.bin") as fh:
            fh.write(b"new, half written")
            raise KeyboardInterrupt  # interrupted mid-write: the old file stays whole
    except KeyboardInterrupt:
        pass
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"old"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.bin", "clip.wav"]  # no temp left


def test_a_wav_that_cannot_be_written_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputError, match="file"):
        write_wav_atomic(tmp_path / "file" / "x.wav", np.zeros(10, np.float32), sample_rate=8000)
    with pytest.raises(OutputError):
        write_wav_atomic(tmp_path / "x.wav", np.zeros(10, np.float32), sample_rate=0)
    assert not (tmp_path / "x.wav").exists()
