"""study/storage/paths.py: the data directory (GRADSTUDY_HOME, else ~/.gradstudy), always absolute, and the
folders inside it; `new_trial_dir` gives a fresh folder for every `gradstudy trial` run."""
from __future__ import annotations

from pathlib import Path

from study.storage import paths


def test_gradstudy_home_is_the_data_directory(home):
    assert paths.data_dir() == home.resolve()
    assert paths.study_dir("night") == home.resolve() / "studies" / "night"
    assert paths.trial_dir("night", 7) == home.resolve() / "studies" / "night" / "trials" / "00007"


def test_a_relative_or_tilde_home_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADSTUDY_HOME", "rel/data")
    assert paths.data_dir() == tmp_path.resolve() / "rel" / "data"
    assert paths.data_dir().is_absolute()
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("GRADSTUDY_HOME", "~/elsewhere")
    assert paths.data_dir() == (tmp_path / "user" / "elsewhere").resolve()


def test_the_default_is_dot_gradstudy_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for unset in (lambda: monkeypatch.delenv("GRADSTUDY_HOME", raising=False),
                  lambda: monkeypatch.setenv("GRADSTUDY_HOME", "")):     # empty counts as unset
        unset()
        assert paths.data_dir() == tmp_path.resolve() / ".gradstudy"


def test_new_trial_dir_is_unique_named_for_the_trial_and_not_created(home):
    made = [paths.new_trial_dir("adding", "lstm") for _ in range(50)]   # the same second: still distinct
    assert len(set(made)) == len(made)
    for path in made:
        assert path.parent == home.resolve() / "trials"
        assert path.is_absolute() and not path.exists()
        stamp, _, token = path.name.partition("-adding-lstm-")
        assert len(token) == 6 and int(token, 16) >= 0
        assert len(stamp) == len("20240101-120000") and stamp.replace("-", "").isdigit()
    assert isinstance(made[0], Path)
