"""The `gradstudy` command: argument parsing and subcommands (main.py), exit codes (exit_codes.py), what the
terminal shows (console.py), `gradstudy ui` (ui.py) and `gradstudy nightly` (nightly.py)."""
from study.cli.main import main

__all__ = ["main"]
