"""The `gradstudy` command.

    gradstudy trial [overrides…]     one trial: progress bar, results table, summary.json; last line = its path

Overrides are Hydra's (`model.cell=lstm task=copy_memory task.seq_len=100`). A bad configuration is
one line on stderr naming the key, the value and what is valid, exit code 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import sys

from rich.console import Console

from workers.config import ConfigError

EXIT_CONFIG = 2


def _trial(args: argparse.Namespace) -> int:
    from study.compose import compose_trial, resolved_yaml
    from study.console import ProgressReporter, results_table
    from study.paths import new_trial_dir
    from workers.device import pick_device
    from workers.summary import write_atomic, write_summary
    from workers.trial import run_trial

    cfg = compose_trial(args.overrides)
    device = pick_device(cfg.train.device)
    err, out = Console(stderr=True), Console()
    summary = run_trial(cfg, ProgressReporter(err, cfg.train.steps), device)
    folder = new_trial_dir(cfg.task.name.value, cfg.model.cell.value)
    write_atomic(folder / "config.yaml", resolved_yaml(cfg))
    path = write_summary(summary, folder / "summary.json")
    out.print(results_table(summary))
    print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradstudy", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    trial = sub.add_parser("trial", help="train and measure one configuration")
    trial.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.cell=lstm")
    trial.set_defaults(run=_trial)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"gradstudy: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("gradstudy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
