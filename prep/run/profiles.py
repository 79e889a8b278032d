"""Named processing profiles: the list of stages a run applies.

A profile is just data: a name and the ordered stage configs.  ``fish``
prepares clips for Fish Audio voice cloning; ``dataset`` prepares TTS
training data.  Stages that are not built are absent, never faked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..stages.denoise import Denoise
from ..stages.downmix import Downmix
from ..stages.loudness import Loudness
from ..stages.measure import Measure
from ..stages.resample import Resample
from ..stages.score import Score
from ..stages.slice import Slice
from ..stages.transcribe import Transcribe
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

    def stage(self, name: str) -> Stage:
        """The profile's stage called ``name``.

        Raises
        ------
        ConfigError
            If the profile has no such stage.
        """
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"profile {self.name!r} has no stage {name!r}; it has {[s.name for s in self.stages]}")

    def configure(self, name: str, **fields: Any) -> Profile:
        """A copy whose stage ``name`` has the given config fields replaced.

        This is how command-line options (``--denoise``, ``--transcribe``…)
        and profile files change a built-in profile: the stage's own
        dataclass validates the new values.

        Raises
        ------
        ConfigError
            If there is no such stage, it has no such field, or the stage
            refuses the value.
        """
        old = self.stage(name)
        known = {f.name for f in dataclasses.fields(old)}  # type: ignore[arg-type]
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(f"stage {name!r} has no setting {', '.join(unknown)}; it has {sorted(known)}")
        new = dataclasses.replace(old, **fields)  # type: ignore[type-var]
        stages = tuple(new if s is old else s for s in self.stages)
        return dataclasses.replace(self, stages=stages)


def _fish() -> Profile:
    return Profile(
        name="fish",
        description="pre-flight cleanup for Fish Audio voice cloning (POST /model)",
        stages=(
            Downmix(),
            Resample(target_sample_rate=44100),
            Denoise(),
            Trim(),
            Transcribe(),
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
            Transcribe(),
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
