"""Test helper: sentences and espeak-ng voice settings that the speaker embedder tells apart."""

from __future__ import annotations

#: Sentences spoken by each test voice.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore every summer morning.",
    "A large number of people gathered in the town square to listen.",
    "Please remember to bring your umbrella because it may rain later today.",
    "The museum opens at nine and closes early on public holidays.",
    "Our team finished the project two weeks ahead of the schedule.",
    "Fresh bread from the bakery smells wonderful in the early morning.",
    "He counted the boxes twice before loading them into the truck.",
]
#: espeak-ng arguments of distinct voices (variant, pitch, speed).
VOICES = {
    "low": ["-v", "en+m3", "-p", "30", "-s", "160"],
    "high": ["-v", "en+f4", "-p", "70", "-s", "170"],
    "us": ["-v", "en-us+m7", "-p", "45", "-s", "150"],
}


def say_wav(path, sentences, voice: str = "us", *, gap_s: float = 0.8, noise: float = 0.0, seed: int = 0):
    """Speak ``sentences`` with espeak-ng into one mono WAV at ``path``, ``gap_s`` of silence between them.

    Returns ``(audio, sample_rate)``; ``noise`` adds white noise of that RMS (float32, full scale 1).
    """
    import subprocess
    import tempfile
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    parts, rate = [], 22050
    with tempfile.TemporaryDirectory() as tmp:
        for k, text in enumerate(sentences):
            one = Path(tmp) / f"{k}.wav"
            subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(one), text], check=True, capture_output=True)
            x, rate = sf.read(one, dtype="float32")
            if parts:
                parts.append(np.zeros(round(gap_s * rate), np.float32))
            parts.append(x)
    lead = np.zeros(round(0.3 * rate), np.float32)
    audio = np.concatenate([lead, *parts, lead])
    if noise:
        audio = audio + np.random.default_rng(seed).normal(0, noise, audio.size).astype(np.float32)
    sf.write(path, audio, rate, subtype="PCM_16")
    return audio, rate


def require_voice_extra_and_espeak() -> None:
    """Skip the calling test module unless the ``[voice]`` extra's embedder loads and espeak-ng is installed."""
    import shutil

    import pytest

    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'voiceprep[voice]')")
    from prep.models import ModelError, model_files
    from prep.voice.embed import EMBEDDER_MODEL

    try:
        model_files(EMBEDDER_MODEL)
    except ModelError as err:  # pragma: no cover - depends on the environment
        pytest.skip(f"speaker embedder unavailable: {err}", allow_module_level=True)
    if shutil.which("espeak-ng") is None:  # pragma: no cover - depends on the environment
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)
