"""TOML profile files (``--profile my.toml``), ``voiceprep profiles`` and the resume key of their settings."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from prep.cli import main
from prep.errors import ConfigError
from prep.run.pipeline import pipeline_fingerprint, stage_config
from prep.run.profiles import PROFILES, PURPOSES, Profile, get_profile, load_profile


def _write(tmp_path, text: str, name: str = "my.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _key(profile: Profile) -> str:
    return pipeline_fingerprint(profile.stages, profile.longform)


def test_a_file_extends_a_built_in_profile_and_changes_only_what_it_names(tmp_path):
    path = _write(tmp_path, 'extends = "fish"\n[score]\nmin_snr_db = 6\nmax_duration_s = 40\n'
                            '[trim]\nmax_pause_s = "none"\n[longform]\nlong_file_s = 600\n')
    mine, fish = load_profile(path), get_profile("fish")
    assert mine.name == "my" and mine.purpose == "fish" and "my.toml" in mine.description
    assert mine.stage("score").min_snr_db == 6.0 and isinstance(mine.stage("score").min_snr_db, float)
    assert mine.stage("score").max_duration_s == 40.0
    assert mine.stage("trim").max_pause_s is None and fish.stage("trim").max_pause_s is not None
    assert mine.longform.long_file_s == 600.0
    assert [s.name for s in mine.stages] == [s.name for s in fish.stages]
    changed = {(s.name, k) for s, f in zip(mine.stages, fish.stages, strict=True)
               for k, v in stage_config(s).items() if stage_config(f)[k] != v}
    assert changed == {("score", "min_snr_db"), ("score", "max_duration_s"), ("trim", "max_pause_s")}
    assert get_profile(str(path)).stages == mine.stages  # --profile takes the path too


def test_top_level_keys_name_describe_and_set_the_purpose(tmp_path):
    path = _write(tmp_path, 'extends = "fish"\nname = "noisy-room"\ndescription = "for the cafe tapes"\n'
                            'purpose = "dataset"\n')
    mine = load_profile(path)
    assert (mine.name, mine.description, mine.purpose) == ("noisy-room", "for the cafe tapes", "dataset")
    assert mine.stages == get_profile("fish").stages


@pytest.mark.parametrize(("text", "names"), [
    ('extends = "fish"\n[score]\nmin_snr_db = "loud"\n', ["[score] min_snr_db", "'loud'", "a number"]),
    ('extends = "fish"\n[score]\nmos = 1\n', ["[score] mos", "1", "true or false"]),
    ('extends = "fish"\n[resample]\ntarget_sample_rate = 44100.5\n', ["[resample] target_sample_rate", "44100.5"]),
    ('extends = "fish"\n[score]\nmin_snr_db = 30\n', ["[score]", "min_snr_db=30", "warn_snr_db=20"]),
    ('extends = "fish"\n[score]\nmin_snr = 3\n', ["[score]", "no setting min_snr", "min_snr_db"]),
    ('extends = "fish"\n[scroe]\nmin_snr_db = 3\n', ["[scroe]", "no stage 'scroe'", "score"]),
    ('extends = "fish"\n[trim]\nmax_pause_s = "off"\n', ["[trim] max_pause_s", "'off'", '"none"']),
    ('extends = "fish"\n[score]\nmin_duration_s = "none"\n', ["[score] min_duration_s", "'none'", "a number"]),
    ('extends = "fish"\n[longform]\nmin_piece_s = 500\n', ["[longform]", "500"]),
    ('extends = "fish"\nscore = 3\n', ["score = 3", "table"]),
    ('extends = "fish"\nspeed = 2\n', ["unknown key speed", "extends"]),
    ('extends = "fish"\npurpose = "clone"\n', ["purpose = 'clone'", "dataset", "fish"]),
    ('extends = "fissh"\n', ["extends = 'fissh'", "dataset", "fish"]),
    ('name = "x"\n', ["missing extends"]),
    ('extends = "fish\n', ["not valid TOML", "line 1"]),
])
def test_a_bad_file_is_one_line_naming_the_file_the_key_and_the_value(tmp_path, text, names):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for name in names:
        assert name in message, message


def test_a_missing_or_unknown_profile_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no such file"):
        get_profile(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        get_profile("nope")
    out = tmp_path / "out"
    bad = _write(tmp_path, 'extends = "fish"\n[score]\nmin_snr_db = "x"\n')
    assert main(["run", str(tmp_path), "-o", str(out), "--profile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "min_snr_db" in err
    assert not out.exists(), "nothing is created"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_prints_each_built_in_as_toml_that_loads_back_the_same(tmp_path, capsys, name):
    assert main(["profiles", name]) == 0
    text = capsys.readouterr().out
    if sys.version_info >= (3, 11):
        import tomllib

        assert tomllib.loads(text)["extends"] == name
    back, built_in = load_profile(_write(tmp_path, text, f"{name}-copy.toml")), get_profile(name)
    assert back.stages == built_in.stages
    assert [stage_config(s) for s in back.stages] == [stage_config(s) for s in built_in.stages]
    assert back.longform == built_in.longform
    assert (back.purpose, back.description) == (built_in.purpose, built_in.description)
    assert _key(back) == _key(built_in)


def test_a_changed_profile_prints_and_loads_back_its_changes(tmp_path, capsys):
    first = _write(tmp_path, 'extends = "dataset"\n[score]\nmax_duration_s = "none"\nmin_snr_db = 7.5\n'
                             '[longform]\nblock_s = 5\n')
    assert main(["profiles", str(first)]) == 0
    again = load_profile(_write(tmp_path, capsys.readouterr().out, "again.toml"))
    mine = load_profile(first)
    assert again.stages == mine.stages and again.longform == mine.longform
    assert again.stage("score").max_duration_s is None and again.stage("score").min_snr_db == 7.5


def test_profiles_lists_the_built_in_profiles_with_their_descriptions(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name, make in PROFILES.items():
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        assert make().description in line and make().purpose in PURPOSES
    assert main(["profiles", "nope"]) == 2


def test_the_resume_key_follows_every_setting_of_a_file(tmp_path):
    fish = get_profile("fish")
    same = load_profile(_write(tmp_path, 'extends = "fish"\n[score]\nmin_snr_db = 10\n', "same.toml"))
    assert _key(same) == _key(fish), "an integer for a float is the same setting"
    keys = {_key(fish)}
    for i, (table, key, value) in enumerate([("score", "min_snr_db", 12), ("score", "warn_snr_db", 25),
                                             ("loudness", "target_lufs", -16), ("longform", "long_file_s", 900)]):
        changed = load_profile(_write(tmp_path, f'extends = "fish"\n[{table}]\n{key} = {value}\n', f"c{i}.toml"))
        keys.add(_key(changed))
    assert len(keys) == 5, "each change gives a new resume key"


def test_check_runs_with_a_profile_file(tmp_path, demo_dir, capsys):
    path = _write(tmp_path, 'extends = "fish"\n[score]\nmin_snr_db = 80\nwarn_snr_db = 90\n')
    wav = demo_dir / "alice" / "a01.wav"
    assert main(["check", str(wav), "--json", "--profile", str(path)]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    snr = next(f for f in record["findings"] if f["code"] == "snr.too_low")
    assert snr["threshold"] == 80.0 and record["verdict"] == "rejected"


# -- generic over stage dataclasses ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Odd:
    name: ClassVar[str] = "odd"
    changes: ClassVar[frozenset[str]] = frozenset()
    words: tuple[str, ...] = ("a",)
    mode: Literal["fast", "slow"] = "fast"
    level: int | None = None
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.gain_db > 20:
            raise ValueError(f"gain_db {self.gain_db} is too loud")

    def apply(self, clip):  # pragma: no cover - never run
        return clip


def test_configure_checks_any_stage_dataclass_by_its_field_types():
    profile = Profile(name="t", description="test", stages=(_Odd(),))
    odd = profile.configure("odd", words=["x", "y"], mode="slow", level=3, gain_db=2).stage("odd")
    assert odd == _Odd(words=("x", "y"), mode="slow", level=3, gain_db=2.0)
    assert profile.configure("odd", level="none").stage("odd").level is None
    for fields, words in [({"words": "x"}, "a list"), ({"words": [1]}, "words[0]"), ({"mode": "medium"}, "'fast'"),
                          ({"level": 2.5}, "an integer"), ({"gain_db": True}, "a number"),
                          ({"gain_db": 30}, "too loud")]:
        with pytest.raises(ConfigError, match="odd") as err:
            profile.configure("odd", **fields)
        assert words in str(err.value)
    with pytest.raises(ConfigError, match="no built-in profile"):  # a file can only extend a built-in one
        profile.to_toml()
    with pytest.raises(ConfigError, match="purpose"):
        dataclasses.replace(profile, purpose="podcast")


def test_run_with_a_profile_file_records_it_and_redoes_files_when_a_setting_changes(tmp_path, demo_dir, capsys):
    inp = tmp_path / "in" / "alice"
    inp.mkdir(parents=True)
    (inp / "a01.wav").write_bytes((demo_dir / "alice" / "a01.wav").read_bytes())
    path = _write(tmp_path, 'extends = "fish"\n[score]\nmin_snr_db = 5\n', "quiet.toml")
    run = ["run", str(inp), "-o", str(tmp_path / "out"), "--jobs", "1", "--profile", str(path)]
    assert main(run) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["profile"] == "quiet" and report["purpose"] == "fish"
    assert report["thresholds"]["min_snr_db"] == 5.0
    capsys.readouterr()
    assert main(run) == 0
    assert "resuming: 1 file(s) already done" in capsys.readouterr().err
    path.write_text('extends = "fish"\n[score]\nmin_snr_db = 6\n', encoding="utf-8")
    assert main(run) == 0
    err = capsys.readouterr().err
    assert "the profile or config changed" in err and "1 file(s) done then are redone" in err
    assert json.loads((tmp_path / "out" / "report.json").read_text())["thresholds"]["min_snr_db"] == 6.0
