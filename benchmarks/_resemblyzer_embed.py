"""Helper for benchmarks/speakers.py, run in a separate venv that has torch + resemblyzer.

Usage: ``python _resemblyzer_embed.py IN.npz OUT.npz``.  ``IN.npz`` holds 16 kHz mono float32
arrays ``a0``, ``a1``...; ``OUT.npz`` gets ``emb`` (n, 256), ``cpu_s`` (process CPU seconds of
the embedding calls, preprocessing included), ``audio_s`` and the install size of torch +
resemblyzer and their requirements that voiceprep itself does not need.  One torch thread.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _dist_size(names: list[str]) -> int:
    from importlib import metadata

    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for f in dist.files or []:
            p = dist.locate_file(f)
            try:
                total += p.stat().st_size
            except OSError:
                pass
    return total


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from resemblyzer import VoiceEncoder, preprocess_wav

    data = np.load(sys.argv[1])
    keys = sorted(data.files, key=lambda k: int(k[1:]))
    enc = VoiceEncoder("cpu", verbose=False)
    enc.embed_utterance(preprocess_wav(np.zeros(16000, np.float32) + 0.01, source_sr=16000))  # warm-up
    embs, cpu, audio_s = [], 0.0, 0.0
    for k in keys:
        wav = data[k]
        audio_s += wav.size / 16000
        t0 = time.process_time()
        pre = preprocess_wav(wav, source_sr=16000)
        if pre.size < 1600:
            embs.append(np.full(256, np.nan, np.float32))
        else:
            embs.append(enc.embed_utterance(pre))
        cpu += time.process_time() - t0
    size = _dist_size(["torch", "resemblyzer", "typing", "webrtcvad", "sympy", "networkx", "jinja2", "mpmath",
                       "markupsafe", "filelock", "fsspec", "typing-extensions"])
    np.savez(sys.argv[2], emb=np.stack(embs), cpu_s=cpu, audio_s=audio_s, install_bytes=size)


if __name__ == "__main__":
    main()
