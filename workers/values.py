"""Reading and showing the loose values of summaries and Optuna attributes, written once.

- `is_number`: a real number, int or float (bools are not numbers here);
- `finite_number`: a finite real number as float, else None;
- `metric_value`: what may be logged as an MLflow metric (finite numbers, and bools as 0/1);
- `as_float`: any value float() accepts (strings of the search space), else None;
- `dotted`: a dotted key in nested dicts (None where a level is missing);
- `fmt`: a table cell (4 significant digits, yes/no, lists joined, `missing` for None).
"""
from __future__ import annotations

import math
from typing import Any, Optional


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_number(value: Any) -> Optional[float]:
    if not is_number(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_value(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, bool) else finite_number(value)


def as_float(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def dotted(mapping: Any, key: str) -> Any:
    node = mapping
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def fmt(value: Any, missing: str = "-") -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, list):
        return ", ".join(fmt(v, missing) for v in value)
    return str(value)
