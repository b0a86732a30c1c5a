"""Studies that mix sequence lengths (e.g. `experiment=init_phase`, T ∈ {100, 1000, 5000}): the report's
ranking and colours by the decay rate, the one gradient figure that does not depend on T. Studies measured
at initialization (`train.steps=0`, `untrained`) are ranked by it too: their objective is an untrained loss.

Over a mixed study the objective (a loss at T) and the health verdict (a ratio over the task's span, T
for the adding problem) grow with T: the same net is healthy at T = 30 and vanishing at T = 100. The
decay rate (workers/gradients/probes.py: the least-squares slope of log10 ‖∂L_T/∂h_{T−k}‖ over k, decades per step
back) is the same at every T, so the report (study/report/page.py) ranks each cell's trials by |decay rate|
(the flattest gradient first: neither vanishing nor exploding per step) and colours the trials of its
figures by the decay rate where the study has more than one `task.seq_len`.

Reads Optuna trials and plain summary dicts; draws nothing (the colour map is matplotlib's, imported
only when a colour is asked for).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

from optuna.trial import FrozenTrial, TrialState

from study.records.attrs import TrialRecord
from workers.values import as_float, dotted, finite_number

RANK_KEY = "decay_rate"
RANK_NOTE = ("|decay_rate| (decades per step back, the slope of the top layer's log10 ‖∂L_T/∂h_t‖; "
             "it does not depend on T), the flattest first")
CMAP = "coolwarm"     # negative rates (vanishing) blue, positive (exploding) red, 0 light grey
LEVELS = 15           # discrete colour steps: a figure draws one scatter per colour (plots.grouped), and a
                      # colour per trial made the report of a 3000-trial mixed study 3.5× slower


def seq_len(t: FrozenTrial, summary: Optional[dict] = None) -> Optional[int]:
    """The trial's `task.seq_len`: its record, its sampled param, else its summary's config."""
    value = TrialRecord.from_frozen(t).seq_len
    if value is None:
        value = t.params.get("task.seq_len", dotted((summary or {}).get("config"), "task.seq_len"))
    number = finite_number(as_float(value))
    return int(number) if number is not None else None


def mixes_lengths(trials: list[FrozenTrial], summaries: Optional[dict[int, dict]] = None) -> bool:
    """More than one sequence length among the trials that ran (COMPLETE or PRUNED)."""
    summaries = summaries or {}
    lengths = {seq_len(t, summaries.get(t.number)) for t in trials
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    return len(lengths - {None}) > 1


def untrained(trials: list[FrozenTrial], summaries: Optional[dict[int, dict]] = None) -> bool:
    """Every trial that ran (COMPLETE or PRUNED) was measured at initialization (`train.steps=0`, e.g.
    `experiment=init_phase`): its objective is the loss of an untrained net, which ranks nothing the
    study measures, so its trials are ranked by |decay rate| as in a study that mixes lengths."""
    summaries = summaries or {}
    ran = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    steps = [TrialRecord.from_frozen(t).steps for t in ran]
    steps = [s if s is not None else (summaries.get(t.number) or {}).get("steps") for s, t in zip(steps, ran)]
    return bool(ran) and all(s == 0 for s in steps)


def decay_rate(t: FrozenTrial, summary: Optional[dict] = None) -> Optional[float]:
    """The last probe's decay rate (its record, else its summary), None where unknown or not finite."""
    rate = TrialRecord.from_frozen(t).decay_rate
    if rate is None and summary and summary.get("probes"):
        rate = summary["probes"][-1].get("decay_rate")
    return finite_number(as_float(rate))


def rank_key(t: FrozenTrial, summary: Optional[dict] = None) -> tuple[float, int]:
    """Smaller is better: |decay rate|; an unknown rate loses, ties go to the lower trial number."""
    rate = decay_rate(t, summary)
    return (abs(rate) if rate is not None else math.inf), t.number


def ranks_by_rate(trials: list[FrozenTrial], summaries: Optional[dict[int, dict]] = None) -> bool:
    """The study's trials are ranked by |decay rate|, not by the objective: it mixes lengths or it was
    measured at initialization (the report, the study's description)."""
    return mixes_lengths(trials, summaries) or untrained(trials, summaries)


def flattest(trials: list[FrozenTrial], summaries: Optional[dict[int, dict]] = None) -> Optional[FrozenTrial]:
    """The COMPLETE trial with the flattest gradient (smallest |decay rate|), None without one."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: rank_key(t, (summaries or {}).get(t.number))) if done else None


def best_per_cell(trials: list[FrozenTrial], summaries: Optional[dict[int, dict]] = None) -> dict[str, FrozenTrial]:
    """Each `gradstudy.cell`'s COMPLETE trial with the flattest gradient (smallest |decay rate|)."""
    by_cell: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            by_cell.setdefault(str(TrialRecord.from_frozen(t).cell or "?"), []).append(t)
    return {cell: flattest(ts, summaries) for cell, ts in sorted(by_cell.items())}


def rate_limit(rates: list[Optional[float]]) -> float:
    """The colour scale's half-width: the largest |rate| drawn (at least 0.01 decades per step)."""
    return max([abs(r) for r in rates if r is not None] + [0.01])


def rate_colour(rate: Optional[float], limit: float) -> str:
    """A hex colour of `rate`, one of LEVELS steps of a diverging scale symmetric around 0 (grey where
    unknown)."""
    if rate is None:
        return "#7f7f7f"
    position = 0.5 + 0.5 * max(-1.0, min(1.0, rate / limit))          # 0..1
    return _steps()[min(int(position * LEVELS), LEVELS - 1)]


@lru_cache(maxsize=1)
def _steps() -> list[str]:
    """The LEVELS hex colours of the scale, from the most negative rate to the most positive."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in colormaps[CMAP].resampled(LEVELS)(range(LEVELS))]


def colour_scale(limit: float):
    """The colour bar's mappable of `rate_colour` (the same LEVELS steps from −limit to +limit)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return ScalarMappable(Normalize(-limit, limit), colormaps[CMAP].resampled(LEVELS))
