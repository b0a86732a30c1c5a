"""Which configuration keys a trial actually reads, given its task, cell, initialization and optimizer.

A trial's resolved config holds every key, but many do not apply to it: the reservoir keys
on an rnn, `train.clip.threshold` with clipping off, `train.momentum` with adam. Records meant to be
compared across trials (MLflow params) keep the keys that apply; the full config is kept elsewhere.
Plain Python on plain dicts (dotted keys), like the rest of `workers/`.
"""
from __future__ import annotations

from typing import Any, Callable

from workers.config import CELL_KEYS, LAMBDA1_INITS

_LAMBDA1 = {i.value for i in LAMBDA1_INITS}

# key → does it apply to this config (a nested plain dict)? Keys not listed always apply.
RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "task.permute": lambda c: c["task"]["name"] == "digits",
    "task.n_symbols": lambda c: c["task"]["name"] == "copy_memory",
    "task.n_copy": lambda c: c["task"]["name"] == "copy_memory",
    "task.tau": lambda c: c["task"]["name"] == "mackey_glass",
    "task.horizon": lambda c: c["task"]["name"] == "mackey_glass",
    "task.free_run": lambda c: c["task"]["name"] == "mackey_glass",
    "task.free_run_teacher": lambda c: c["task"]["name"] == "mackey_glass" and bool(c["task"]["free_run"]),
    "task.ar_order": lambda c: c["task"]["name"] == "mackey_glass",
    "task.series_length": lambda c: c["task"]["name"] == "mackey_glass",
    "model.init_gain": lambda c: c["model"]["init"] in _LAMBDA1,
    "train.momentum": lambda c: c["train"]["optimizer"] in ("momentum", "rmsprop"),
    "train.clip.threshold": lambda c: c["train"]["clip"]["mode"] != "none",
    **{key: (lambda c, cells=frozenset(x.value for x in cells): c["model"]["cell"] in cells)
       for key, cells in CELL_KEYS.items()},
}
# an ESN's reservoir and input weights are drawn by its own keys (spectral radius, sparsity, scaling)
for _key in ("model.init", "model.input_init"):
    RULES[_key] = lambda c: c["model"]["cell"] != "esn"
RULES["model.init_gain"] = lambda c: c["model"]["cell"] != "esn" and c["model"]["init"] in _LAMBDA1


def applies(key: str, config: dict[str, Any]) -> bool:
    """Whether the trial with this (nested, plain) config reads `key` (dotted)."""
    rule = RULES.get(key)
    try:
        return rule is None or bool(rule(config))
    except (KeyError, TypeError):   # a partial config: keep the key rather than guess
        return True


def lambda1(config: dict[str, Any]) -> float | None:
    """λ1 of W_rec set at initialization (`model.init_gain` with a scaled, orthogonal or identity init)."""
    model = config.get("model") or {}
    if applies("model.init_gain", config) and model.get("init_gain") is not None:
        return float(model["init_gain"])
    return None
