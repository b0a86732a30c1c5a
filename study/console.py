"""What a person sees while a trial runs: a progress bar fed by the reporter interface, then a table."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class ProgressReporter:
    """A `workers.reporter.Reporter` that draws a progress bar with the latest loss and health."""

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

    def should_stop(self, step: int) -> bool:
        return False

    def on_end(self, summary: dict[str, Any]) -> None:
        self.progress.stop()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


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
        ("vanishing ratio, step 0 → last", f"{_fmt(first['vanishing_ratio'])} → {_fmt(last['vanishing_ratio'])}"),
        ("horizon, step 0 → last", f"{_fmt(first['horizon'])} → {_fmt(last['horizon'])}"),
        ("λ1(W_rec), last", last["lambda1"]),
        ("wall time (s)", final["wall_s"]),
        ("sequences / s", final["seq_per_s"]),
    ]
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else _fmt(value))
    return table
