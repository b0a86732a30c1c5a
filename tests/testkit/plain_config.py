"""A trial's TrialConfig from `section.key=value` overrides without Hydra, for the tests that must run where only
PyTorch is installed: the CUDA tests on a GPU machine (scripts/gpu-check carries pytest there, not Hydra,
OmegaConf, antlr4 or Optuna, which `study.config.compose` imports).

    trial_config(["model.cell=lstm", "train.steps=12"])   # the defaults of workers/config.py, then the overrides

The defaults of workers/config.py are those conf/ composes (`compose_trial([])`); tests/workers/test_cuda.py
checks, where Hydra is installed, that each override list it uses gives the TrialConfig that `compose_trial`
gives. Values are read as YAML scalars would be: true/false, null, integers, floats, else strings.
"""
from __future__ import annotations

from typing import Any, Sequence

from workers.config import TrialConfig, from_dict


def scalar(text: str) -> Any:
    """`12` → 12, `0.5` → 0.5, `true` → True, `null` → None, anything else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def trial_config(overrides: Sequence[str]) -> TrialConfig:
    """The validated TrialConfig of `overrides` (`task.*`, `model.*`, `train.*` keys, dotted; later ones win);
    an unknown key or a bad value is a ConfigError, as from `compose_trial`."""
    data: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"not key=value: {item!r}")
        *path, name = key.strip().split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[name] = scalar(value)
    return from_dict(data)
