"""The command line's shape (study/cli/main.py `parse`): overrides may follow an option, a command without
overrides refuses one."""
from __future__ import annotations

import pytest

from study.cli.main import parse


def test_resume_takes_overrides_before_and_after_its_storage_option():
    args = parse(["resume", "s1", "tracking.enabled=false", "--storage", "postgresql://h/db",
                  "cluster.address=10.0.0.1:6379"])
    assert (args.command, args.name, args.storage) == ("resume", "s1", "postgresql://h/db")
    assert args.overrides == ["tracking.enabled=false", "cluster.address=10.0.0.1:6379"]


def test_nightly_keeps_the_order_of_overrides_around_its_date():
    args = parse(["nightly", "a.b=1", "--date", "2026-01-02", "a.b=2"])
    assert args.date == "2026-01-02" and args.overrides == ["a.b=1", "a.b=2"]


@pytest.mark.parametrize("argv", [["status", "s1", "x=1"], ["resume", "s1", "--nope"], ["list", "x=1"]])
def test_a_command_refuses_what_it_does_not_take(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
