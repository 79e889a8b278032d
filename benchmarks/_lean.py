"""The built-in profiles with the model-based extras' stages off: what a run does without the extras.

The speed targets of issue 17 are for the model-free pipeline.  Stages that
run a model are configured off here, as a missing extra would leave them:
DNSMOS (``mos=False`` on every stage that has it) and the voice embedding
(``voice`` stage, ``model=""``).  A new model stage must be added here.
"""

from __future__ import annotations

import dataclasses

#: Python run with ``-c`` instead of ``-m prep``: the voiceprep CLI on the lean profiles (argv as usual).
LEAN_CLI = r"""
import sys
from benchmarks._lean import install_lean_profiles
install_lean_profiles()
from prep.cli import entry
entry(sys.argv[1:])
"""


def lean(profile):
    """``profile`` with its model-based stages off (see the module docstring)."""
    for stage in profile.stages:
        names = {f.name for f in dataclasses.fields(stage)} if dataclasses.is_dataclass(stage) else set()
        if "mos" in names:
            profile = profile.configure(stage.name, mos=False)
        if stage.name in ("voice", "diarise"):
            profile = profile.configure(stage.name, model="")
        if stage.name == "transcribe":
            profile = profile.configure("transcribe", mode="never")
        if stage.name == "denoise":
            profile = profile.configure("denoise", method="gate")
    return profile


def install_lean_profiles() -> None:
    """Make :func:`prep.run.profiles.get_profile` return the lean profiles in this process."""
    import prep.run.profiles as profiles

    def make_lean(make):
        return lambda: lean(make())

    profiles.PROFILES = {name: make_lean(make) for name, make in profiles.PROFILES.items()}
