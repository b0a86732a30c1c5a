"""The command line of `gradstudy`: its parser (every subcommand, option and help text) and `parse`.

The subcommand's name is stored as `command`; study/cli/main.py maps it to the function that runs it, so this
module imports nothing of main (no cycle)."""
from __future__ import annotations

import argparse
from importlib import metadata

from study.cli import exit_codes

DISTRIBUTION = "gradstudy"   # pyproject.toml's [project] name

DESCRIPTION = """\
gradstudy: hyperparameter studies of vanishing and exploding gradients in recurrent networks.
A study is Hydra overrides of the configs in conf/ (every key: docs/configuration.md); Optuna samples and
prunes, Ray runs the trials, and every trial measures its gradients exactly (|dL/dh_t| at every step,
lambda1 of W_rec, a health verdict: vanishing / exploding / healthy / diverged), recorded in MLflow."""

# name: (what it does, an example); the order of `gradstudy --help`
COMMANDS = {
    "trial": ("train and measure one configuration: a progress bar, a results table, summary.json "
              "(its path is the last line)",
              "gradstudy trial model.cell=lstm task=copy_memory task.seq_len=100 train.steps=2000"),
    "run": ("run a study: Optuna samples, Ray runs the trials, MLflow records them",
            "gradstudy run experiment=adding_cells study.n_trials=64"),
    "resume": ("finish an interrupted study as it was started (overrides after NAME apply last)",
               "gradstudy resume adding_cells cluster.address=new-head:6379"),
    "status": ("a study's trial counts by state, best so far, health mix",
               "gradstudy status adding_cells --json"),
    "check": ("the study's expectations (published results), one line each: exit 8 if one fails",
              "gradstudy check paper_pascanu2013"),
    "list": ("the studies in the storage",
             "gradstudy list --storage postgresql://gradstudy@db-host:5432/optuna"),
    "nightly": ("the nightly study of a date (nightly-<date>), compared with the night before: exit 5 "
                "on a regression",
                "gradstudy nightly --date 2026-11-21 train.steps=200"),
    "report": ("back-fill MLflow with the trials it missed and rewrite the study report",
               "gradstudy report adding_cells --tracking-uri http://mlflow-host:5000"),
    "ui": ("links to the studies' trials in the MLflow UI; serves the local store's UI",
           "gradstudy ui demo --open"),
}

SEARCH_EXAMPLE = ("gradstudy run study.name=gain_lr model.init=scaled "
                  "'++search.params={model.init_gain: \"choice(0.5, 1, 2)\", "
                  "train.lr: \"tag(log, interval(1e-4, 1e-2))\"}'")

STORAGE_HELP = ("the study's Optuna storage: a database URL (postgresql://user@host:5432/db) or a journal "
                "file path (default: the local journal file, $GRADSTUDY_HOME/optuna/journal.log)")
NAME_HELP = "the study's name (its study.name; `gradstudy list` shows them)"


class OptionValue(str):
    """A string given by a command-line option, which it names (`option`): study/storage/backend.py's errors
    about a `--storage URL` name `--storage`, not the config key `study.storage`."""

    option = ""


def storage_option(value: str) -> str:
    """`--storage`'s type: a non-empty URL remembers that it came from `--storage` (the default, empty, stays the
    local journal file)."""
    if not value:
        return value
    url = OptionValue(value)
    url.option = "--storage"
    return url


def version() -> str:
    """The installed distribution's version ('unknown' when run from a source tree that is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def epilog() -> str:
    width = max(map(len, COMMANDS))
    examples = "\n".join(f"  {name:<{width}}  {example}" for name, (_, example) in COMMANDS.items())
    return f"""\
commands, an example each (`gradstudy COMMAND --help` for its arguments):
{examples}

overrides are Hydra's: key=value (model.cell=lstm), a config group (task=copy_memory, experiment=demo), a
search space on the command line with ++search.params (added to an experiment's own; the grammar:
docs/configuration.md#search-spaces):
  {SEARCH_EXAMPLE}
A bad key or value is one line naming the key, the value and what is valid, exit 2, nothing written.

environment:
  GRADSTUDY_HOME  the data directory (default ~/.gradstudy): studies/ (trial files, reports), trials/
                  (`gradstudy trial`), optuna/journal.log (the local storage), mlflow/ (the local MLflow
                  store); what the libraries print (Ray's banners and C++ warnings, Optuna's warnings) goes
                  to $GRADSTUDY_HOME/logs/gradstudy.log

exit codes:
{exit_codes.table()}"""


def _command(sub, name: str) -> argparse.ArgumentParser:
    what, example = COMMANDS[name]
    return sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".",
                          epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradstudy", description=DESCRIPTION, epilog=epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                   help="print gradstudy's version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    trial = _command(sub, "trial")
    trial.add_argument("overrides", nargs="*", help="Hydra overrides of the trial's config, e.g. model.cell=lstm "
                                                    "task=copy_memory")
    run = _command(sub, "run")
    run.add_argument("overrides", nargs="*",
                     help="Hydra overrides of the study's config, e.g. experiment=adding_cells "
                          "study.n_trials=64 study.storage=postgresql://…")
    resume = _command(sub, "resume")
    resume.add_argument("name", help=NAME_HELP)
    resume.add_argument("--storage", default="", type=storage_option, help=STORAGE_HELP)
    resume.add_argument("overrides", nargs="*", help="applied after the study's own, e.g. cluster.address=… "
                                                     "when the cluster moved")
    status = _command(sub, "status")
    status.add_argument("name", help=NAME_HELP)
    status.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    status.add_argument("--storage", default="", type=storage_option, help=STORAGE_HELP)
    check = _command(sub, "check")
    check.add_argument("name", help=NAME_HELP)
    check.add_argument("--storage", default="", type=storage_option, help=STORAGE_HELP)
    lst = _command(sub, "list")
    lst.add_argument("--storage", default="", type=storage_option, help=STORAGE_HELP)
    night = _command(sub, "nightly")
    night.add_argument("--date", default="", help="the night's date, YYYY-MM-DD (default: today, UTC)")
    night.add_argument("overrides", nargs="*", help="Hydra overrides on top of experiment=nightly")
    report = _command(sub, "report")
    report.add_argument("name", help=NAME_HELP)
    report.add_argument("--storage", default="", type=storage_option, help=STORAGE_HELP)
    report.add_argument("--tracking-uri", default=None, help="MLflow URI (default: the study's tracking.uri)")
    ui = _command(sub, "ui")
    ui.add_argument("name", nargs="?", default=None, help="one study (default: every study in the store)")
    ui.add_argument("--port", type=int, default=5000,
                    help="port of the local store's UI on 127.0.0.1 (default: %(default)s); one in use is "
                         "refused (exit 2)")
    ui.add_argument("--open", action="store_true", help="open the (first) link in the default browser")
    ui.add_argument("--no-serve", action="store_true", help="print the links only; start no UI")
    ui.add_argument("--tracking-uri", default=None,
                    help="an MLflow tracking server (default: MLFLOW_TRACKING_URI, else the local store)")
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; overrides may also come after an option (`resume NAME --storage URL key=value`)."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") for e in extra):
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    return args
