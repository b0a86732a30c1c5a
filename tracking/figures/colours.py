"""The colour of each health verdict, shared by the figures and the MLflow runs (no plotting import)."""
from __future__ import annotations

from typing import Optional

from workers.gradients.health import SEVERITY

HEALTH_ORDER = SEVERITY   # the verdicts, least severe first (workers/gradients/health.py)
HEALTH_COLOURS = {
    "healthy": "#2ca02c",
    "vanishing": "#1f77b4",
    "exploding": "#ff7f0e",
    "diverged": "#d62728",
}
OTHER_COLOUR = "#7f7f7f"   # no verdict (yet): running, failed before a probe
# the emoji square nearest each colour: a legend that markdown (an MLflow run's description) can show
HEALTH_SQUARES = {"healthy": "🟩", "vanishing": "🟦", "exploding": "🟧", "diverged": "🟥"}
OTHER_SQUARE = "⬜"


def health_legend() -> str:
    """`🟩 healthy · 🟦 vanishing · 🟧 exploding · 🟥 diverged · ⬜ no verdict`"""
    return " · ".join(f"{HEALTH_SQUARES[h]} {h}" for h in HEALTH_COLOURS) + f" · {OTHER_SQUARE} no verdict"


def health_colour(verdict: Optional[str]) -> str:
    """The colour of a verdict in the figures and of a trial's MLflow run (`mlflow.runColor`)."""
    return HEALTH_COLOURS.get(verdict or "", OTHER_COLOUR)
