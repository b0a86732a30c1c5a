"""`gradstudy --help` and the command line's own words (study/cli/arguments.py): the description, an example
per command (in the overview and in the command's own --help), the search space's command-line form (composed
as printed), GRADSTUDY_HOME and its log file, every exit code; `--version`; a help text for every argument and
the default of every option that has one; a bad `--storage` named as `--storage`; tables whole when stdout is
not a terminal (study/cli/console.py's out_console)."""
from __future__ import annotations

import argparse
import io
import re
import shlex
from importlib import metadata
from pathlib import Path

import pytest

from study import cli
from study.cli import arguments
from study.cli.arguments import parse, parser
from study.cli.exit_codes import Exit
from testkit.tiny import TINY

REPO = Path(__file__).resolve().parents[3]


def help_text(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 0
    return capsys.readouterr().out


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def every_parser() -> list[tuple[str, argparse.ArgumentParser]]:
    p = parser()
    return [("gradstudy", p), *((f"gradstudy {name}", sub) for name, sub in subparsers(p).items())]


def test_help_describes_the_tool_each_command_with_an_example_home_and_exit_codes(capsys):
    text = help_text(["--help"], capsys)
    assert "vanishing and exploding gradients in recurrent networks" in text
    assert "The gradstudy command." not in text
    names = list(subparsers(parser()))
    assert len(names) >= 9
    for name in names:
        assert re.search(rf"^\s+{name}\s+gradstudy {name}\b", text, re.M), f"no example line for {name}:\n{text}"
    assert re.search(r"^\s+GRADSTUDY_HOME\s+the data directory \(default ~/\.gradstudy\)", text, re.M), text
    assert "$GRADSTUDY_HOME/logs/gradstudy.log" in " ".join(text.split())
    codes = text.split("exit codes:", 1)[1]
    for code in Exit:
        assert re.search(rf"^\s+{int(code)}\s+\S", codes, re.M), f"exit code {int(code)} missing:\n{codes}"
    assert "--version" in text


@pytest.mark.parametrize("name", list(arguments.COMMANDS))
def test_each_command_help_has_an_example(name, capsys):
    text = help_text([name, "--help"], capsys)
    assert re.search(rf"^example:\n  gradstudy {name}\b", text, re.M), text


def test_the_examples_parse(capsys):
    """Every example the help prints parses with the real parser (a renamed option fails here)."""
    for _, example in arguments.COMMANDS.values():
        args = parse(shlex.split(example)[1:])
        assert args.command == shlex.split(example)[1]


def test_the_search_space_example_composes_as_printed(home, capsys):
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner

    text = help_text(["--help"], capsys)
    line = next(line.strip() for line in text.splitlines() if "++search.params=" in line)
    argv = shlex.split(line)
    assert argv[:2] == ["gradstudy", "run"]
    args = parse(argv[1:])
    composed = compose_root(args.overrides)
    assert set(composed.root.search.params) == {"model.init_gain", "train.lr"}
    StudyRunner(composed).validate()            # the grammar, the sampler's and the keys' checks of a real run


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_the_documented_search_space_command_composes(doc, home):
    """The command-line form of a search space that README and docs/configuration.md show runs as shown."""
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner

    text = (REPO / doc).read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("gradstudy run")
             and "++search.params=" in line]
    assert lines, f"{doc} shows no search space on the command line"
    for line in lines:
        args = parse(shlex.split(line, comments=True)[1:])
        composed = compose_root(args.overrides)
        assert "train.lr" in composed.root.search.params, line
        StudyRunner(composed).validate()


def test_version_prints_the_installed_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gradstudy {metadata.version('gradstudy')}"


@pytest.mark.parametrize("prog,p", every_parser(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_argument_has_help_and_every_default_is_shown(prog, p):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        what = f"{prog} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), f"{what}: no help"
        if action.option_strings and action.default not in (None, False, "", argparse.SUPPRESS):
            assert "default" in action.help, f"{what}: its default {action.default!r} is not in its help"


@pytest.mark.parametrize("argv", [["status", "s1"], ["check", "s1"], ["report", "s1"], ["resume", "s1"], ["list"]])
def test_a_bad_storage_option_is_named_as_the_option(argv, home, capsys):
    assert cli.main([*argv, "--storage", "foo://nowhere"]) == Exit.CONFIG
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("gradstudy: config error: --storage='foo://nowhere' is invalid"), err


def test_a_bad_storage_override_is_named_as_the_key(home, capsys):
    from study.storage.backend import open_storage
    from workers.config import ConfigError

    assert cli.main(["run", *TINY, "study.storage=foo://nowhere"]) == Exit.CONFIG
    assert capsys.readouterr().err.startswith("gradstudy: config error: study.storage='foo://nowhere' is invalid")
    with pytest.raises(ConfigError) as info:
        open_storage("foo://nowhere")              # a plain string: as the driver opens its study.storage
    assert str(info.value).startswith("study.storage='foo://nowhere'")


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("columns,tty,width", [(None, False, "wide"), ("60", False, 60), ("60", True, 60),
                                               (None, True, "rich")])
def test_out_console_width(columns, tty, width, monkeypatch):
    from study.cli import console

    monkeypatch.setattr("sys.stdout", Stream(tty))
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    out = console.out_console()
    if width == "wide":
        assert out.width >= 1000
    elif width == "rich":
        assert out.width < 1000                      # rich's own choice: the terminal's width, else 80
    else:
        assert out.width == width


def test_tables_are_whole_when_stdout_is_not_a_terminal(drivers, monkeypatch):
    """A real `gradstudy run` with stdout to a file: the every-trial table is wider than rich's 80 columns
    of a non-terminal, and its cells are whole (`activation=linear`, not `activation=lin…`)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    d = drivers.run(["run", *TINY, "study.name=wide", "study.n_trials=2"], timeout=240)
    assert d.returncode == 0, d.output()
    out = d.stdout()
    rows = [line for line in out.splitlines() if "init_gain=" in line]
    assert rows and "…" not in out, out
    assert all(re.search(r"init_gain=[\d.]+, activation=(tanh|relu|linear) ", r) for r in rows), out
    assert max(map(len, out.splitlines())) > 80, out
