"""The command line of `gradstudy`: its parser (every subcommand, option and help text) and `parse`.

The subcommand's name is stored as `command`; study/cli/main.py maps it to the function that runs it, so this
module imports nothing of main (no cycle)."""
from __future__ import annotations

import argparse

from study.cli import exit_codes

DESCRIPTION = "The gradstudy command."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradstudy", description=DESCRIPTION,
                                epilog="exit codes:\n" + exit_codes.table(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    trial = sub.add_parser("trial", help="train and measure one configuration")
    trial.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.cell=lstm")
    run = sub.add_parser("run", help="run a study: Optuna samples, Ray runs trials")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=adding_cells")
    storage_help = "Optuna storage URL (default: the local journal file)"
    resume = sub.add_parser("resume", help="finish an interrupted study")
    resume.add_argument("name")
    resume.add_argument("--storage", default="", help=storage_help)
    resume.add_argument("overrides", nargs="*", help="applied after the study's own, e.g. cluster.address=… "
                                                     "when the cluster moved")
    status = sub.add_parser("status", help="trial counts, best so far, health mix")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument("--storage", default="", help=storage_help)
    check = sub.add_parser("check", help="the study's expectations (published results): exit 8 if one fails")
    check.add_argument("name")
    check.add_argument("--storage", default="", help=storage_help)
    lst = sub.add_parser("list", help="the studies in the storage")
    lst.add_argument("--storage", default="", help=storage_help)
    night = sub.add_parser("nightly", help="the nightly study of a date, compared with the night before")
    night.add_argument("--date", default="", help="YYYY-MM-DD (default: today, UTC)")
    night.add_argument("overrides", nargs="*", help="Hydra overrides on top of experiment=nightly")
    report = sub.add_parser("report", help="back-fill MLflow and rewrite the study report")
    report.add_argument("name")
    report.add_argument("--storage", default="", help=storage_help)
    report.add_argument("--tracking-uri", default=None, help="MLflow URI (default: the study's tracking.uri)")
    ui = sub.add_parser("ui", help="links to the studies' trials in the MLflow UI; serves the local store")
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
