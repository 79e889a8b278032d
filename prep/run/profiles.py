"""Named processing profiles: the list of stages a run applies.

A profile is just data: a name, a purpose, the ordered stage configs and
the long-file settings.  ``fish`` prepares clips for Fish Audio voice
cloning; ``dataset`` prepares TTS training data.  Stages that are not
built are absent, never faked.

A profile can also be a TOML file (``--profile my.toml``) that starts from
a built-in one and changes settings; :func:`load_profile` reads it and
:meth:`Profile.to_toml` writes one::

    extends = "fish"              # required: the built-in profile it starts from
    name = "noisy-room"           # optional (default: the file's stem)
    description = "..."           # optional
    purpose = "fish"              # optional: "fish" or "dataset" (what the speaker notes advise on)

    [score]                       # a table per stage, named as the stage (``voiceprep profiles fish``)
    min_snr_db = 6
    max_duration_s = "none"       # "none" unsets a setting that may be unset

    [longform]                    # how long files are cut (prep.run.longform.LongForm)
    long_file_s = 600

The stage list and order come from ``extends``; a file changes settings
only.  Every value is checked against the type of the stage dataclass's
field (an integer is taken for a float), then by the stage itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..stages.denoise import Denoise
from ..stages.diarise import Diarise
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

__all__ = ["PROFILES", "PURPOSES", "Profile", "get_profile", "load_profile"]

#: What a profile prepares clips for: the speaker notes of a report advise on it.
PURPOSES = {
    "fish": "a Fish Audio voice model (POST /model): the best 1–3 minutes of one voice",
    "dataset": "a TTS training dataset: every clean clip with its transcript",
}
#: The TOML value that unsets a setting whose type allows ``None`` (TOML has no null).
NONE = "none"
#: Top-level keys of a profile file; every other top-level name is a table of settings.
_FILE_KEYS = ("extends", "name", "description", "purpose")
_LONGFORM = "longform"


@dataclass(frozen=True)
class Profile:
    """A named, ordered tuple of stages, and how long files are cut before them.

    Attributes
    ----------
    name, description : str
    stages : tuple of Stage
        In the order they run.
    longform : LongForm
        How files longer than ``longform.long_file_s`` are cut before the stages.
    purpose : str
        What the clips are for, one of :data:`PURPOSES`: the speaker notes of
        the report follow it.
    """

    name: str
    description: str
    stages: tuple[Stage, ...]
    longform: LongForm = field(default_factory=LongForm)
    purpose: str = "fish"

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ConfigError(f"purpose {self.purpose!r} is not one of {sorted(PURPOSES)}")

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
        and profile files change a built-in profile.  Each value is checked
        against the type of the stage dataclass's field (an ``int`` is taken
        for a ``float``, a list for a tuple, :data:`NONE` for ``None`` where
        the field allows it), then the stage's own dataclass validates the
        new values together.

        Raises
        ------
        ConfigError
            If there is no such stage, it has no such field, a value has the
            wrong type, or the stage refuses the values.
        """
        old = self.stage(name)
        new = _replace_checked(old, f"[{name}]", fields)
        stages = tuple(new if s is old else s for s in self.stages)
        return dataclasses.replace(self, stages=stages)

    def configure_longform(self, **fields: Any) -> Profile:
        """A copy with the given :class:`~prep.run.longform.LongForm` settings replaced (checked as in
        :meth:`configure`)."""
        return dataclasses.replace(self, longform=_replace_checked(self.longform, f"[{_LONGFORM}]", fields))

    def to_toml(self) -> str:
        """The profile as a TOML profile file that :func:`load_profile` reads back to the same settings.

        It ``extends`` the profile itself when it is built in, else the
        built-in one with the same stages, and sets every setting.  A
        setting whose default is found at run time (the voice model, say)
        is written as a comment.
        """
        base = self.name if self.name in PROFILES else _base_of(self)
        lines = [
            f"# voiceprep profile {self.name!r}: {self.description}",
            "# Use: voiceprep run INPUT -o OUT --profile FILE.toml   (keep only the settings you change)",
            f"extends = {_toml_value(base)}",
            f"description = {_toml_value(self.description)}",
            f"purpose = {_toml_value(self.purpose)}  # {' or '.join(repr(p) for p in PURPOSES)}",
        ]
        for stage in (*self.stages, self.longform):
            title = _LONGFORM if stage is self.longform else stage.name
            lines += ["", f"[{title}]"]
            for f in dataclasses.fields(stage):  # type: ignore[arg-type]
                if not f.init:
                    continue
                value = getattr(stage, f.name)
                text = _toml_value(value)
                if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
                    lines.append(f"# {f.name} = {text}  (found at run time)")
                else:
                    lines.append(f"{f.name} = {text}")
        return "\n".join(lines) + "\n"


def _base_of(profile: Profile) -> str:
    """The built-in profile with the same stage names as ``profile``."""
    names = [s.name for s in profile.stages]
    for key, make in PROFILES.items():
        if [s.name for s in make().stages] == names:
            return key
    raise ConfigError(f"profile {profile.name!r}: no built-in profile has its stages {names}")


def _toml_value(value: Any) -> str:
    """``value`` as a TOML value (``None`` as :data:`NONE`)."""
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def _type_name(hint: Any) -> str:
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    return str(hint).replace("typing.", "")


def _check_value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type hint ``hint`` (and converted: int -> float, list -> tuple).

    Hints this does not know (a class of the stage's own, say) pass the value through: the stage's
    dataclass is the last judge.
    """
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (type(None) in args and value == NONE):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_value(arg, value, where)
            except ConfigError as err:
                errors.append(err)
        allowed = " or ".join(_type_name(a) for a in args if a is not type(None))
        if type(None) in args:
            allowed += f' or "{NONE}"'
        raise ConfigError(f"{where} = {value!r}: expected {allowed}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} = {value!r}: expected one of {list(args)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}: expected a list")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_check_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where} = {value!r}: expected a list of {len(args)} values")
            items = [_check_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))]
        else:
            items = [_check_value(args[0], v, f"{where}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (bool, str):
        if isinstance(value, hint):
            return value
    else:
        return value
    if value is None:
        raise ConfigError(f"{where}: expected {_type_name(hint)}, it cannot be unset")
    raise ConfigError(f"{where} = {value!r}: expected {_type_name(hint)}, not {type(value).__name__}")


def _replace_checked(config: Any, title: str, fields: dict[str, Any]) -> Any:
    """``dataclasses.replace(config, **fields)`` with each value checked against its field's type."""
    known = {f.name: f for f in dataclasses.fields(config) if f.init}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ConfigError(f"{title} has no setting {', '.join(unknown)}; it has {', '.join(sorted(known))}")
    try:
        hints = typing.get_type_hints(type(config))
    except Exception:  # an unresolvable annotation: leave the values to the dataclass
        hints = {}
    checked = {key: _check_value(hints.get(key, Any), value, f"{title} {key}") for key, value in fields.items()}
    try:
        return dataclasses.replace(config, **checked)
    except ConfigError as err:
        raise ConfigError(f"{title}: {err}") from err
    except (TypeError, ValueError) as err:  # a stage that validates with the built-in exceptions
        raise ConfigError(f"{title}: refused {checked}: {err}") from err


def _fish() -> Profile:
    return Profile(
        name="fish",
        description="pre-flight cleanup for Fish Audio voice cloning (POST /model)",
        stages=(
            Downmix(),
            Resample(target_sample_rate=44100),
            Denoise(),
            Trim(),
            Diarise(keep_voice="main"),
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
        purpose="dataset",
        stages=(
            Downmix(),
            Resample(target_sample_rate=24000),
            Denoise(mode="nonstationary"),
            Trim(),
            Diarise(keep_voice="main"),
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
    """Return the built-in profile called ``name``, or the profile file at the path ``name`` (``*.toml``).

    Raises
    ------
    ConfigError
        If there is no such profile, or the file is not a valid profile (see :func:`load_profile`).
    """
    if name in PROFILES:
        return PROFILES[name]()
    if name.endswith(".toml") or Path(name).is_file():
        return load_profile(name)
    raise ConfigError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or a profile file (*.toml)")


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"--profile {path}: no such file") from err
    except OSError as err:
        raise ConfigError(f"--profile {path}: cannot read it: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text ({err.reason})") from err


def load_profile(path: str | Path) -> Profile:
    """Read a TOML profile file (the schema is in this module's docstring).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Profile
        The built-in profile named by ``extends``, with the file's settings.

    Raises
    ------
    ConfigError
        One line naming the file, the key and the bad value: a missing file,
        invalid TOML, a missing or unknown ``extends``, an unknown key or
        stage, an unknown setting, a value of the wrong type, or one the
        stage refuses.
    """
    path = Path(path)
    data = _read_toml(path)
    base = data.get("extends")
    if base is None:
        raise ConfigError(f"{path}: missing extends = \"fish\" (the built-in profile it starts from: "
                          f"{', '.join(sorted(PROFILES))})")
    if not isinstance(base, str) or base not in PROFILES:
        raise ConfigError(f"{path}: extends = {base!r}: not a built-in profile; choose one of {sorted(PROFILES)}")
    profile = PROFILES[base]()
    stage_names = [s.name for s in profile.stages]
    top: dict[str, Any] = {"name": path.stem, "description": f"{profile.description} (changed by {path.name})"}
    try:
        for key, value in data.items():
            if key == "extends":
                continue
            if key in _FILE_KEYS:
                if not isinstance(value, str) or not value.strip():
                    raise ConfigError(f"{key} = {value!r}: expected a non-empty string")
                if key == "purpose" and value not in PURPOSES:
                    raise ConfigError(f"purpose = {value!r}: expected one of {sorted(PURPOSES)}")
                top[key] = value
            elif key == _LONGFORM or key in stage_names:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} = {value!r}: expected a table [{key}] of settings")
                if key == _LONGFORM:
                    profile = profile.configure_longform(**value)
                else:
                    profile = profile.configure(key, **value)
            elif isinstance(value, dict):
                raise ConfigError(f"[{key}]: profile {base!r} has no stage {key!r}; its stages are "
                                  f"{', '.join(stage_names)} (and [{_LONGFORM}])")
            else:
                raise ConfigError(f"unknown key {key} = {value!r}; the top-level keys are {', '.join(_FILE_KEYS)}")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    return dataclasses.replace(profile, **top)
