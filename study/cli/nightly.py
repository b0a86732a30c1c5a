"""Scheduled nightly studies: `gradstudy nightly [--date YYYY-MM-DD] [overrides…]`.

- The `nightly` experiment runs as the study `<study.name>-<UTC date>` (e.g. `nightly-2026-11-21`).
- Idempotent: a second run on the same date is the same study, so it resumes (and does nothing if the
  study is finished). Locked: a concurrent second run exits 3 at once. Bounded: `study.timeout_s`;
  trials still running at the limit are recorded FAIL with `gradstudy.fail_reason=budget` and queued
  again, so a later run that day finishes them.
- Afterwards it compares with the previous night (the latest `<study.name>-<date>` before this date in
  the same storage): best objective per cell type, health mix, failure count. The comparison goes to
  the parent MLflow run (`nightly/comparison.json`, metrics `nightly/*`) and into the study report.

Regression rule (`nightly.*`):
- a cell's best first objective is worse than the previous night's by more than
  `nightly.tolerance` × |previous| (relative; worse = higher when minimizing), or the cell has no
  complete trial tonight but had one before;
- the failure count (final FAIL trials) rose by more than `nightly.failure_tolerance`;
- the diverged fraction of finished trials rose by more than `nightly.diverged_tolerance` (absolute).
Exit codes (study/cli/exit_codes.py): 0 fine, 5 regression, 4 budget ran out before the study finished
(no regression seen).
"""
from __future__ import annotations

import math
import re
from datetime import date as Date
from datetime import datetime, timezone
from typing import Any, Optional

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from study.cli.exit_codes import Exit
from study.config.schema import NightlyConfig
from study.driver.hooks import StudyHook
from study.driver.progress import Outcome
from study.records import results
from study.records.attrs import StudyAttr
from workers.summary import json_safe

DATE_FORMAT = "%Y-%m-%d"


def today_utc() -> Date:
    return datetime.now(timezone.utc).date()


def nightly_name(prefix: str, day: Date) -> str:
    return f"{prefix}-{day.strftime(DATE_FORMAT)}"


def previous_night(storage: optuna.storages.BaseStorage, prefix: str, day: Date) -> Optional[str]:
    """The latest study `<prefix>-<date>` strictly before `day`, or None."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{4}}-\d{{2}}-\d{{2}})$")
    nights = []
    for name in optuna.get_all_study_names(storage):
        m = pattern.match(name)
        if m:
            when = datetime.strptime(m.group(1), DATE_FORMAT).date()
            if when < day:
                nights.append((when, name))
    return max(nights)[1] if nights else None


def _profile(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    done = results.finished(trials)
    best = {cell: t.values[0] for cell, t in results.best_per_cell(study).items()}
    health = results.health_mix(done)
    return {"name": study.study_name, "best": best, "health": health,
            "failures": sum(t.state == TrialState.FAIL for t in done),
            "finished": len(done),
            "diverged_fraction": health.get("diverged", 0) / sum(health.values()) if health else 0.0}


def compare(previous: optuna.Study, current: optuna.Study, cfg: NightlyConfig) -> dict[str, Any]:
    """The comparison of two nights and the regressions found, as a JSON-ready dict (a best that is
    ±inf, a cell whose every trial diverged, is null there, as in summary.json)."""
    before, now = _profile(previous), _profile(current)
    minimize = current.directions[0] == StudyDirection.MINIMIZE
    regressions, cells = [], {}
    for cell in sorted(set(before["best"]) | set(now["best"])):
        old, new = before["best"].get(cell), now["best"].get(cell)
        entry = {"previous": old, "current": new, "regressed": False}
        if old is not None and new is None:
            entry["regressed"] = True
            regressions.append(f"{cell}: no complete trial tonight (previous best {old:.4g})")
        elif old is not None and math.isfinite(old):
            worse = (new - old) if minimize else (old - new)
            entry["change"] = new - old
            if not math.isfinite(new) or worse > cfg.tolerance * abs(old):
                entry["regressed"] = True
                regressions.append(f"{cell}: best {new:.4g} vs {old:.4g} "
                                   f"(tolerance {cfg.tolerance:.0%} of the previous)")
        cells[cell] = entry
    if now["failures"] - before["failures"] > cfg.failure_tolerance:
        regressions.append(f"failures {now['failures']} vs {before['failures']} "
                           f"(tolerance +{cfg.failure_tolerance})")
    rise = now["diverged_fraction"] - before["diverged_fraction"]
    if rise > cfg.diverged_tolerance:
        regressions.append(f"diverged fraction {now['diverged_fraction']:.0%} vs "
                           f"{before['diverged_fraction']:.0%} (tolerance +{cfg.diverged_tolerance:.0%})")
    return json_safe({"previous": before["name"], "current": now["name"], "cells": cells,
                      "health": {"previous": before["health"], "current": now["health"]},
                      "failures": {"previous": before["failures"], "current": now["failures"]},
                      "diverged_fraction": {"previous": before["diverged_fraction"],
                                            "current": now["diverged_fraction"]},
                      "regressions": regressions, "regressed": bool(regressions),
                      "tolerances": {"tolerance": cfg.tolerance, "failure_tolerance": cfg.failure_tolerance,
                                     "diverged_tolerance": cfg.diverged_tolerance}})


class Comparison(StudyHook):
    """The driver's `on_end` hook of a nightly run: compares with the previous night (in `storage`) while the
    study lock is held, records the comparison (study attr `StudyAttr.NIGHTLY`, comparison.json; MLflow
    tracking, whose `on_end` runs after this one, logs it and puts it in the report) and returns
    Exit.REGRESSION on a regression. `messages` collects the lines to print after the tables."""

    def __init__(self, prefix: str, day: Date, name: str, storage: str, rules: NightlyConfig):
        self.prefix, self.day, self.name = prefix, day, name
        self.storage, self.rules = storage, rules
        self.messages: list[str] = []

    def on_end(self, outcome: Outcome) -> Optional[int]:
        import json

        from study.storage.backend import open_storage
        from study.storage.paths import study_dir
        from workers.summary import write_atomic

        storage = open_storage(self.storage)
        previous = previous_night(storage, self.prefix, self.day)
        if previous is None:
            self.messages.append(f"No night before {self.name} in the storage: nothing to compare with.")
            return None
        comparison = compare(optuna.load_study(study_name=previous, storage=storage), outcome.study,
                             self.rules)
        if outcome.timed_out:   # a partial night: cells not reached yet are not regressions (exit 4)
            comparison["partial"] = True
            comparison["regressions"] = [r for r in comparison["regressions"] if "no complete trial" not in r]
            comparison["regressed"] = bool(comparison["regressions"])
        outcome.study.set_user_attr(StudyAttr.NIGHTLY, comparison)
        write_atomic(study_dir(self.name) / "comparison.json", json.dumps(comparison, indent=1))
        verdict = "REGRESSION" if comparison["regressed"] else "no regression"
        self.messages.append(f"Compared with {previous}: {verdict}")
        self.messages.extend(f"  - {line}" for line in comparison["regressions"])
        return Exit.REGRESSION if comparison["regressed"] else None
