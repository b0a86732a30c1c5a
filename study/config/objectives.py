"""Reading a trial's values: a dotted key of its config, and its objective values from its summary."""
from __future__ import annotations

import math
from typing import Any

from workers.config import TrialConfig


def lookup(cfg: TrialConfig, key: str) -> Any:
    """The value of a dotted key in a trial config (enum values as strings)."""
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return getattr(node, "value", node)


def objective_values(summary: dict, metrics: list[str], directions: list[str]) -> list[float]:
    values = []
    for metric, direction in zip(metrics, directions):
        node: Any = summary
        for part in metric.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, bool):
            node = float(node)
        if node is None or not math.isfinite(node):
            node = math.inf if direction == "minimize" else -math.inf
        values.append(float(node))
    return values


__all__ = ["lookup", "objective_values"]
