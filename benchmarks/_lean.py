"""The built-in profiles with the model-based extras' stages off: what a run does without the extras.

The speed targets of issue 17 are for the model-free pipeline.  Stages that
run a model are configured off here, as a missing extra would leave them:
DNSMOS (``mos=False`` on every stage that has it) and the voice embedding
(``voice`` stage, ``model=""``).  A new model stage must be added here.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.util
import sys

#: Python run with ``-c`` instead of ``-m prep``: the voiceprep command (its process entry, ``prep._entry``)
#: on the lean profiles (argv as usual).  The profiles are patched when the command imports them, so the
#: command's start-up is the real one.
LEAN_CLI = r"""
import sys
from benchmarks._lean import install_lean_profiles
install_lean_profiles()
try:
    from prep._entry import main
except ImportError:  # a checkout from before prep._entry (benchmarks/cpu.py runs older ones)
    from prep.cli import main
raise SystemExit(main(sys.argv[1:]))
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


def _patch(profiles) -> None:
    def make_lean(make):
        return lambda: lean(make())

    profiles.PROFILES = {name: make_lean(make) for name, make in profiles.PROFILES.items()}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds ``prep.run.profiles`` as the import system would and patches it right after it has run."""

    def find_spec(self, name, path, target=None):
        if name != _PROFILES:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


_PROFILES = "prep.run.profiles"


def install_lean_profiles() -> None:
    """Make :func:`prep.run.profiles.get_profile` return the lean profiles in this process.

    Imports nothing of ``prep``: if the profiles module is not imported yet, it is patched when the
    command imports it (NumPy, numba and the stages load when they would without this).
    """
    if _PROFILES in sys.modules:
        _patch(sys.modules[_PROFILES])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
