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
