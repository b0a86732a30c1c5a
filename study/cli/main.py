"""The `gradstudy` command: studies of vanishing and exploding gradients in recurrent networks.

A study is described by Hydra overrides of the configs in `conf/`; Optuna samples and prunes, Ray runs the
trials, MLflow records every trial's gradient measurements. Data goes to $GRADSTUDY_HOME (default ~/.gradstudy).

    gradstudy trial [overrides…]     one trial: progress bar, results table, summary.json; last line = its path
    gradstudy run [overrides…]       a study (e.g. experiment=adding_cells study.n_trials=64)
    gradstudy resume NAME [overrides…]  finish an interrupted study as it was started (overrides last)
    gradstudy status NAME [--json]   counts by state, best so far, health mix
    gradstudy check NAME             the study's expectations (published results), ✓/✗
    gradstudy list                   the studies in the storage
    gradstudy nightly [--date D] [overrides…]   the nightly study `nightly-<date>`, compared with the night before
    gradstudy report NAME            back-fill MLflow, rewrite the study report on the parent run
    gradstudy ui [NAME] [--open]     a link per study to its trials in the MLflow UI (the local store's UI is
                                     served on 127.0.0.1:5000; --tracking-uri URL for a server; --no-serve)

Overrides are Hydra's (`model.cell=lstm task=copy_memory task.seq_len=100`). A bad configuration is
one line on stderr naming the key, the value and what is valid, exit code 2, and nothing is written.
Exit codes: study/cli/exit_codes.py (`gradstudy --help` lists them).
"""
from __future__ import annotations

import argparse
import os
import sys

from study.cli.arguments import parse, parser  # noqa: F401  (parser: for callers of study.cli.main)
from study.cli.exit_codes import Exit
from study.cluster.watch import ClusterLost
from study.records.attrs import StudyAttr
from study.storage.lock import StudyLocked
from study.storage.retry import StorageUnavailable
from tracking.runs.errors import TrackingError
from tracking.runs.urls import scrub
from workers.config import ConfigError


def _run_study(overrides: list[str], hooks=(), epilogue: list[str] | None = None, release_ray: bool = False) -> int:
    """Run a study with a live display and the end tables. The driver's hooks (study/driver/hooks.py) are built
    here: `hooks` first (the nightly comparison, whose `on_end` may return an exit code), then MLflow tracking
    (refused before anything runs when MLflow does not answer), then the live display; `epilogue` lines they
    fill are printed after the tables."""
    from study.cli.console import StudyDisplay, best_per_cell_table, err_console, out_console, trials_table
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner
    from study.storage.paths import study_dir

    composed = compose_root(overrides)
    err, out = err_console(), out_console()
    name = composed.root.study.name
    runner = StudyRunner(composed)
    runner.validate()                    # a bad search space before MLflow is asked anything
    from study.recording.hook import tracking_hooks

    hooks = [*hooks, *tracking_hooks(composed)]
    warn_if_identical(composed, err)
    try:
        with StudyDisplay(err, name) as display:
            outcome = runner.run([*hooks, display], release_ray=release_ray)
    except KeyboardInterrupt:
        raise StudyInterrupted(name, composed.root.study.storage) from None
    every = trials_table(outcome.study)
    if every is not None:
        out.print(every)
    out.print(best_per_cell_table(outcome.study, list(composed.root.search.params)))
    storage = composed.root.study.storage
    stored = f" --storage '{scrub(storage)}'" if storage else ""   # a password shows as ***
    out.print(f"Results: `gradstudy status {name}{stored}`; trial summaries under "
              f"{study_dir(name) / 'trials'}")
    if composed.root.tracking.enabled:
        report = study_dir(name) / "report" / "report.html"
        uri = composed.root.tracking.uri
        where = f" --tracking-uri {scrub(uri)}" if uri.startswith(("http://", "https://")) else ""
        out.print(f"In MLflow: `gradstudy ui {name}{where}` prints the link to its trials; study report: {report}")
        from study.recording.backfill import unrecorded

        # what the back-fill can record
        pending = [t.number for t, summary in unrecorded(outcome.study) if summary.exists()]
        if pending:
            out.print(f"MLflow missed {len(pending)} trial(s) (it did not answer): `gradstudy report {name}{stored}` "
                      "records them from the trial files once it is back.")
    for line in epilogue or []:
        out.print(line)
    code = outcome.code
    if outcome.timed_out:
        err.print(f"study.timeout_s reached: the study is not finished; `gradstudy resume {name}` continues it")
    return code or (Exit.BUDGET if outcome.timed_out else Exit.OK)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: the message names the command that continues it."""

    def __init__(self, name: str, storage: str):
        stored = f" --storage '{scrub(storage)}'" if storage else ""
        super().__init__(f"`gradstudy resume {name}{stored}` continues the study (finished trials are kept)")


def warn_if_identical(composed, err) -> None:
    """Trials that can only repeat one another (no search space, several trials): said once, before Ray."""
    root = composed.root
    if root.search.params and root.study.sampler.value == "grid":
        warn_if_grid_repeats(root, err)
    if root.search.params or root.study.n_trials < 2:
        return
    n, seed = root.study.n_trials, root.train.seed
    err.print(f"gradstudy: warning: search.params is empty, so the {n} trials of this study are one configuration "
              f"with one seed (train.seed={seed}): {n} identical runs. Vary the seed with "
              f"'++search.params={{train.seed: \"range(0, {n})\"}}' study.sampler=grid, or add a search space "
              "(e.g. experiment=demo, or '++search.params={model.init_gain: \"choice(0.5, 1.0, 2.0)\"}')",
              soft_wrap=True, markup=False)


def warn_if_grid_repeats(root, err) -> None:
    """A grid smaller than study.n_trials: Optuna's GridSampler runs its combinations again (the same
    configuration and seed) for the trials past the grid's size; said once, before Ray."""
    import math

    from study.search.space import SearchSpace

    grid = SearchSpace.from_config(root.search.params, root.search.conditions).grid()
    size, n = math.prod(len(values) for values in grid.values()), root.study.n_trials
    if n <= size:
        return
    err.print(f"gradstudy: warning: the grid has {size} combinations and study.n_trials={n}, so {n - size} trials "
              f"repeat a combination with the same seed (train.seed={root.train.seed}); set study.n_trials={size}, "
              "or add the seed to the search space (e.g. '++search.params={train.seed: \"range(0, 3)\"}' makes the "
              f"grid {size * 3})", soft_wrap=True, markup=False)


def _nightly(args: argparse.Namespace) -> int:
    from datetime import datetime

    from study.cli import nightly
    from study.config.compose import compose_root

    try:
        day = datetime.strptime(args.date, nightly.DATE_FORMAT).date() if args.date else nightly.today_utc()
    except ValueError:
        raise ConfigError("--date", args.date, "a date as YYYY-MM-DD") from None
    overrides = ["experiment=nightly", *args.overrides]
    composed = compose_root(overrides)
    prefix = composed.root.study.name
    name = nightly.nightly_name(prefix, day)
    comparison = nightly.Comparison(prefix, day, name, composed.root.study.storage, composed.root.nightly)
    return _run_study(overrides + [f"study.name={name}"], [comparison], comparison.messages,
                      args.release_ray)


def _run(args: argparse.Namespace) -> int:
    return _run_study(args.overrides, release_ray=args.release_ray)


def _resume(args: argparse.Namespace) -> int:
    from study.driver.runner import started_with
    from study.storage.backend import load_study

    study = load_study(args.name, args.storage)
    storage = [f"study.storage={args.storage}"] if args.storage else []
    overrides = started_with(study) + [f"study.name={args.name}"] + storage + args.overrides
    finished = finished_line(study, overrides)
    if finished:
        print(finished)
        return Exit.OK
    return _run_study(overrides)


def finished_line(study, overrides: list[str]) -> str:
    """One line when the study has nothing left to run (its n_trials counted, none RUNNING or WAITING), so
    that `resume` says so without starting Ray; empty otherwise."""
    from optuna.trial import TrialState

    from study.config.compose import compose_root
    from study.records.trials import counts_towards_total, state_counts

    target = compose_root(overrides).root.study.n_trials
    trials = study.get_trials(deepcopy=False)
    done = sum(counts_towards_total(t) for t in trials)
    if done < target or any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials):
        return ""
    counts = ", ".join(f"{k} {v}" for k, v in state_counts(trials).items() if v)
    return (f"study {study.study_name} is finished: {done} of {target} trials ({counts}); nothing to resume. "
            f"`gradstudy status {study.study_name}` shows the results; `gradstudy resume {study.study_name} "
            f"study.n_trials={target + 10}` would run 10 more")


def _status(args: argparse.Namespace) -> int:
    import json

    from study.cli.console import expectations_table, out_console, status_table
    from study.records import results
    from study.storage.backend import load_study

    status = results.status(load_study(args.name, args.storage))
    if args.json:
        print(json.dumps(status, default=str))
    else:
        out_console().print(status_table(status))
        if status["expectations"]:
            out_console().print(expectations_table(status["expectations"]))
    return 0


def _check(args: argparse.Namespace) -> int:
    """The study's expectations (published claims): exit 8 when one does not hold."""
    from study.records import results
    from study.storage.backend import load_study

    checked = results.status(load_study(args.name, args.storage))["expectations"]
    if not checked:
        print(f"study {args.name} declares no expectations (`expect:` rules in its experiment): nothing to check")
        return 0
    for r in checked:   # one line a rule: readable in a nightly job's log
        measured = "nothing measured" if r["measured"] is None else f"measured {r['measured']:.4g}"
        print(f"{'✓' if r['passed'] else '✗'} {r['rule']}: {measured} over {r['trials']} trial(s) ({r['counts']})"
              + (f" — {r['note']}" if r.get("note") else "")
              + (f" — {r['claim']}" if r["claim"] else "") + (f" [{r['source']}]" if r["source"] else ""))
    failed = [r for r in checked if not r["passed"]]
    print(f"{len(checked) - len(failed)} of {len(checked)} expectations hold"
          + (f"; failed: {'; '.join(r['rule'] for r in failed)}" if failed else ""))
    return Exit.CLAIM_FAILED if failed else Exit.OK


def _list(args: argparse.Namespace) -> int:
    import optuna
    from rich.table import Table

    from study.cli.console import out_console
    from study.storage.backend import read_storage

    table = Table(title="studies")
    for col in ("name", "trials", "target", "best", "started"):
        table.add_column(col)
    for s in optuna.get_all_study_summaries(read_storage(args.storage)):
        best = s.best_trial.values if s.best_trial is not None and s.best_trial.values else None
        table.add_row(s.study_name, str(s.n_trials), str(s.user_attrs.get(StudyAttr.N_TRIALS, "-")),
                      "-" if best is None else ", ".join(f"{v:.4g}" for v in best),
                      s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-")
    out_console().print(table)
    return 0


def _trial(args: argparse.Namespace) -> int:
    from study.cli.console import ProgressBar, err_console, out_console, results_table
    from study.config.compose import compose_trial
    from study.storage.paths import new_trial_dir
    from workers.device import pick_device
    from workers.summary import write_trial_folder
    from workers.trial import run_trial

    cfg = compose_trial(args.overrides, alone=True)
    device = pick_device(cfg.train.device)
    err, out = err_console(), out_console()
    summary = run_trial(cfg, ProgressBar(err, cfg.train.steps), device)
    folder = new_trial_dir(cfg.task.name.value, cfg.model.cell.value)
    path = write_trial_folder(folder, summary)
    out.print(results_table(summary))
    print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from study.config.compose import compose_root
    from study.driver.runner import started_with
    from study.storage.backend import load_study, resolve_url
    from study.storage.lock import study_lock

    study = load_study(args.name, args.storage)
    composed = compose_root(started_with(study) + [f"study.name={args.name}"])
    with study_lock(args.name, resolve_url(args.storage)):   # not while a driver runs the study
        return _write_report(args, study, composed)


def _write_report(args: argparse.Namespace, study, composed) -> int:
    """The back-fill and the report publishing, as services on the study's parent run."""
    from study.recording.backfill import backfill
    from study.recording.publish import Publisher
    from study.recording.tracked_study import TrackedStudy

    uri = args.tracking_uri if args.tracking_uri is not None else composed.root.tracking.uri
    tracked = TrackedStudy(uri, args.name)
    recorder = tracked.open(composed, study.user_attrs.get(StudyAttr.SEARCH, {}))
    filled = backfill(recorder, study)
    html = Publisher(recorder, tracked.uri).publish(study)
    print(f"back-filled {filled} trial(s) into MLflow; report: {html}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from study.cli.ui import ui

    return ui(args)


def quiet_libraries() -> None:
    """The command's own output only: Optuna's per-study INFO lines off, and MLflow's ("Creating initial
    MLflow database tables…" when a local store is new; an explicit MLFLOW_LOGGING_LEVEL wins). Set here, by
    the application, not at the import of a library module."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


COMMANDS = {"trial": _trial, "run": _run, "resume": _resume, "status": _status, "check": _check, "list": _list,
            "nightly": _nightly, "report": _report, "ui": _ui}    # `args.command` → the function that runs it


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # as the program (`gradstudy …`, `python -m study.cli`: argv from sys.argv) the process runs one study and
    # ends: Ray is let go beside the study's report; a caller that passes argv (a test, a script running several
    # studies on one local Ray) keeps it up
    args.release_ray = argv is None
    quiet_libraries()
    from study.storage.library_log import chatter_to_log

    with chatter_to_log(f"gradstudy {' '.join(argv if argv is not None else sys.argv[1:])}"):
        return _dispatch(args)


def writes(args: argparse.Namespace) -> bool:
    """Whether the command writes under $GRADSTUDY_HOME (checked before it does any work); status, list and
    check only read, and `ui --no-serve` or `ui --tracking-uri` only print links."""
    return args.command in ("trial", "run", "resume", "nightly", "report") or (
        args.command == "ui" and not args.no_serve and not args.tracking_uri)


def _dispatch(args: argparse.Namespace) -> int:
    """The command, its known failures as one line and an exit code (study/cli/exit_codes.py)."""
    try:
        if writes(args):
            from study.storage.paths import require_writable

            require_writable(args.command)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"gradstudy: config error: {exc}", file=sys.stderr)
        return Exit.CONFIG
    except TrackingError as exc:
        print(f"gradstudy: tracking error: {exc}", file=sys.stderr)
        return Exit.CONFIG
    except StorageUnavailable as exc:
        print(f"gradstudy: storage error: {exc}", file=sys.stderr)
        return Exit.STORAGE
    except StudyLocked as exc:
        print(f"gradstudy: {exc}", file=sys.stderr)
        return Exit.LOCKED
    except ClusterLost as exc:
        print(f"gradstudy: cluster error: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(Exit.CLUSTER)   # not through Ray's exit handlers: they would wait for the lost cluster
    except KeyboardInterrupt as exc:
        print(f"gradstudy: interrupted{'; ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
