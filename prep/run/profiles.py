"""Named processing profiles: the list of stages a run applies.

A profile is just data: a name and the ordered stage configs.  ``fish``
prepares clips for Fish Audio voice cloning; ``dataset`` prepares TTS
training data.  Stages that are not built are absent, never faked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..stages.denoise import Denoise
from ..stages.downmix import Downmix
from ..stages.loudness import Loudness
from ..stages.measure import Measure
from ..stages.resample import Resample
from ..stages.score import Score
from ..stages.slice import Slice
from ..stages.trim import Trim
from ..stages.voice import VoiceEmbed
from .longform import LongForm
from .pipeline import Stage

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """A named, ordered tuple of stages, and how long files are cut before them."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    longform: LongForm = field(default_factory=LongForm)


def _fish() -> Profile:
    return Profile(
        name="fish",
        description="pre-flight cleanup for Fish Audio voice cloning (POST /model)",
        stages=(
            Downmix(),
            Resample(target_sample_rate=44100),
            Denoise(),
            Trim(),
            Slice(min_s=10.0, max_s=30.0),
            Measure(),
            Loudness(target_lufs=-23.0, true_peak_dbtp=-1.0),
            Score(),
            VoiceEmbed(),
        ),
    )


def _dataset() -> Profile:
    return Profile(
        name="dataset",
        description="TTS dataset curation: mono 24 kHz clips",
        stages=(
            Downmix(),
            Resample(target_sample_rate=24000),
            Denoise(mode="nonstationary"),
            Trim(),
            Slice(min_s=3.0, max_s=30.0),
            Measure(),
            Loudness(target_lufs=-23.0, true_peak_dbtp=-1.0),
            Score(min_duration_s=0.5, warn_duration_s=1.0, max_duration_s=30.0),
            VoiceEmbed(),
        ),
    )


PROFILES = {"fish": _fish, "dataset": _dataset}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``.

    Raises
    ------
    ConfigError
        If there is no such profile.
    """
    try:
        return PROFILES[name]()
    except KeyError as err:
        raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from err
