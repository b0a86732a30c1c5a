"""What a person sees while a trial runs: a progress bar fed by the reporter interface, then a table."""
from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from study.driver.hooks import StudyHook
from study.driver.progress import Progress as StudyProgress
from study.records.attrs import TrialAttr
from workers.reporter import Reporter
from workers.values import fmt

WIDE = 10_000   # the width of a console whose stream is no terminal: a table is as wide as its cells


def _width(stream) -> int | None:
    """None (rich's own choice: $COLUMNS, else the terminal's width) when COLUMNS is set or `stream` is a
    terminal; else WIDE, so that a table piped to a file or another program is not cut at rich's 80 columns."""
    if os.environ.get("COLUMNS", "").isdigit():
        return None
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return None
    except ValueError:   # a closed stream
        pass
    return WIDE


def out_console() -> Console:
    """The command's stdout as a rich Console: a terminal's width, $COLUMNS, or whole lines when not a terminal."""
    return Console(width=_width(sys.stdout))


def err_console() -> Console:
    """The command's stderr as a rich Console (progress, live display, notes): as out_console, for stderr."""
    return Console(stderr=True, width=_width(sys.stderr))


class ProgressBar(Reporter):
    """A reporter that draws a progress bar with the latest loss and health."""

    def __init__(self, console: Console, total: int):
        self.progress = Progress(TextColumn("[bold]trial"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[health]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self.bar = self.progress.add_task("trial", total=total, loss="-", health="")

    def on_start(self, info: dict[str, Any]) -> None:
        self.progress.start()

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.progress.update(self.bar, completed=step, loss=f"{metrics['train/loss']:.4g}")

    def on_probe(self, probe: dict[str, Any]) -> None:
        self.progress.update(self.bar, health=probe["health"])

    def on_end(self, summary: dict[str, Any]) -> None:
        self.progress.stop()


def results_table(summary: dict[str, Any]) -> Table:
    final, probes = summary["final"], summary["probes"]
    first, last = probes[0], probes[-1]
    cfg = summary["config"]
    table = Table(title=f"{cfg['task']['name']} T={cfg['task']['seq_len']} · {cfg['model']['cell']}"
                        f" · {summary['status']}", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("health", summary["health"]),
        ("test loss", final["test_loss"]),
        ("baseline loss", final["baseline_loss"]),
        ("loss / baseline", final["baseline_ratio"]),
        ("accuracy", final["accuracy"]),
        ("solved", final["solved"]),
        ("steps to solve", final["steps_to_solve"]),
        ("updates", summary["steps"]),
        ("vanishing ratio, step 0 → last", f"{fmt(first['vanishing_ratio'])} → {fmt(last['vanishing_ratio'])}"),
        ("decay rate (decades/step), 0 → last",
         f"{fmt(first.get('decay_rate'))} → {fmt(last.get('decay_rate'))}"),
        ("horizon, step 0 → last", f"{fmt(first['horizon'])} → {fmt(last['horizon'])}"),
        ("λ1(W_rec), last", last["lambda1"]),
        ("wall time (s)", final["wall_s"]),
        ("sequences / s", final["seq_per_s"]),
    ]
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else fmt(value))
    return table


class StudyDisplay(StudyHook):
    """A driver hook: a live status line while a study runs: done / running / pruned / failed, best value, ETA."""

    def __init__(self, console: Console, name: str):
        from rich.live import Live

        self.name = name
        self.live = Live(console=console, refresh_per_second=4, transient=True)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def on_progress(self, p: StudyProgress) -> None:
        eta = p.eta_s()
        eta_text = "-" if eta is None else f"{eta:.0f}s"
        best = "-" if p.best is None else f"{p.best:.4g}"
        self.live.update(f"[bold]{self.name}[/] done {p.done}/{p.total} · running {p.running} · "
                         f"pruned {p.pruned} · failed {p.failed} · best {best} · ETA {eta_text}")


def best_per_cell_table(study, space_keys: list[str]) -> Table:
    """The end-of-run table: the best trial of each cell type with its verdict and key parameters."""
    from study.records import results

    table = Table(title=f"study {study.study_name}: best trial per cell type")
    for col in ("cell", "trial", "objective", "health", "parameters"):
        table.add_column(col, justify="right" if col in ("trial", "objective") else "left")
    for cell, t in results.best_per_cell(study).items():
        params = ", ".join(f"{k.split('.')[-1]}={fmt(v)}" for k, v in t.params.items() if k != "model.cell")
        table.add_row(cell, str(t.number), ", ".join(fmt(v) for v in t.values),
                      t.user_attrs.get(TrialAttr.HEALTH, "-"), params or "-")
    return table


def status_table(status: dict) -> Table:
    table = Table(title=f"study {status['name']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("finished / target", f"{status['finished']} / {status['n_trials']}")
    for state, n in status["states"].items():
        table.add_row(state.lower(), str(n))
    table.add_row("health mix", ", ".join(f"{k} {v}" for k, v in sorted(status["health"].items())) or "-")
    best = status["best"]
    if best:
        table.add_row("best", f"#{best['number']} {fmt(best['values'])} ({best['cell']}, {best['health']})")
    return table


def expectations_table(results: list[dict]) -> Table:
    """Each published claim with what the study measured: ✓ held, ✗ did not."""
    table = Table(title="expectations (published results)")
    for col in ("", "rule", "measured", "trials counted", "source"):
        table.add_column(col)
    for r in results:
        measured = "-" if r["measured"] is None else fmt(r["measured"])
        table.add_row("✓" if r["passed"] else "✗", r["rule"] + (f"\n{r['claim']}" if r.get("claim") else ""),
                      measured + (f" ({r['note']})" if r.get("note") else ""),
                      f"{r['trials']} ({r.get('counts', '')})", r["source"])
    return table


def trials_table(study, limit: int = 30) -> Table | None:
    """Every finished trial side by side (small studies only): parameters, verdict, gradient ratio."""
    from study.records import results

    done = results.finished(study.trials)
    if not done or len(done) > limit:
        return None
    table = Table(title=f"study {study.study_name}: every trial")
    for col in ("trial", "parameters", "health", "vanishing ratio", "objective", "state"):
        table.add_column(col, justify="right" if col in ("trial", "vanishing ratio", "objective") else "left")
    for t in sorted(done, key=lambda t: t.number):
        params = ", ".join(f"{k.split('.')[-1]}={fmt(v)}" for k, v in t.params.items())
        table.add_row(str(t.number), params or "-", t.user_attrs.get(TrialAttr.HEALTH, "-"),
                      fmt(t.user_attrs.get(TrialAttr.VANISHING_RATIO)),
                      fmt(t.values) if t.values else "-", t.state.name.lower())
    return table
