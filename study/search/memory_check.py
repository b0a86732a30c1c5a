"""Pre-flight memory check of a study: the largest trials its search space can sample must fit
(workers/memory.py), checked before any trial runs.

The estimate grows with every size key (train.batch_size, task.seq_len, model.hidden_size, model.layers,
task.test_size, …), so each of those search parameters is taken at its largest value (a choice's largest, a
range's or interval's upper end). The keys whose effect has no order — the cell, attention, normalization,
the optimizer, the task (a config group), `train.tbptt` (0 = full BPTT) — are tried at every choice (both
ends of a numeric range), every combination of them, at most MAX_COMBINATIONS (beyond that each key's worst
choice is picked in turn, the others held). Conditions are not read: a key is taken as if always sampled, a
superset of what trials can be. Combinations the trial schema refuses are skipped (no trial can be them).
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Sequence

from optuna.distributions import CategoricalDistribution

from study.search.grammar import Param, format_override
from study.search.space import SearchSpace
from workers.config import ConfigError, TrialConfig, from_dict, to_dict
from workers.memory import GROWS_WITH, MEMORY_KEYS, check_fits, estimate_bytes

__all__ = ["largest_trials", "check_memory", "MAX_COMBINATIONS"]

MAX_COMBINATIONS = 4096
GROUPS = ("task", "model", "train")   # config groups a search may choose (`task: choice(adding, copy_memory)`)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def candidates(p: Param) -> list[Any]:
    """The values of `p` that can make the largest trial."""
    d = p.distribution
    if d is None:
        values = [p.fixed]
    elif isinstance(d, CategoricalDistribution):
        values = list(d.choices)
    else:
        values = [d.low, d.high]
    if p.key in GROWS_WITH and all(_is_number(v) for v in values):
        return [max(values)]
    return values


def _set(data: dict, key: str, value: Any) -> None:
    *path, name = key.split(".")
    node = data
    for part in path:
        node = node[part]
    node[name] = value


def largest_trials(space: SearchSpace, base: TrialConfig,
                   compose_group: Callable[[list[str]], TrialConfig]) -> list[tuple[int, TrialConfig, dict]]:
    """(estimated bytes, config, the search values that make it) of the candidate trials, largest first.
    `compose_group(overrides)` composes the study's base with config-group overrides (`task=copy_memory`)."""
    params = [p for p in space.params if p.key in MEMORY_KEYS or p.key in GROUPS]
    lists = [candidates(p) for p in params]
    groups: dict[tuple, dict] = {}

    def config(values: dict[str, Any]):
        chosen = tuple(sorted((k, str(v)) for k, v in values.items() if k in GROUPS))
        if chosen not in groups:   # a config-group choice: composed once (Hydra), then its leaves set
            groups[chosen] = to_dict(compose_group([format_override(k, v) for k, v in chosen]) if chosen else base)
        data = copy.deepcopy(groups[chosen])
        for key, value in values.items():
            if key not in GROUPS:
                _set(data, key, value)
        return from_dict(data)

    def scored(values: dict[str, Any]):
        try:
            cfg = config(values)
        except ConfigError:   # a combination the schema refuses: no trial can be it
            return None
        return estimate_bytes(cfg), cfg, values

    total = 1
    for values in lists:
        total *= len(values)
    results = []
    if total <= MAX_COMBINATIONS:
        for combo in itertools.product(*lists):
            result = scored(dict(zip([p.key for p in params], combo)))
            if result is not None:
                results.append(result)
    else:   # each key's worst value in turn, the others held, twice over
        current = {p.key: values[-1] for p, values in zip(params, lists)}
        for _ in range(2):
            for p, values in zip(params, lists):
                tries = [scored({**current, p.key: v}) for v in values]
                tries = [t for t in tries if t is not None]
                if tries:
                    best = max(tries, key=lambda t: t[0])
                    current = dict(best[2])
                    results.append(best)
    if not results:
        results.append((estimate_bytes(base), base, {}))
    return sorted(results, key=lambda r: -r[0])


def check_memory(space: SearchSpace, base: TrialConfig, compose_group: Callable[[Sequence[str]], TrialConfig],
                 measure: bool = True) -> None:
    """Raise ConfigError (one line: the keys, the estimate, the memory there is) when the largest trial the
    search space can sample does not fit (workers/memory.py check_fits; `measure=False` on a Ray cluster: only
    `train.max_memory_gb`, when set). The error names `search.params.<key>` when a sampled key drives it."""
    for _, cfg, values in largest_trials(space, base, lambda ovs: compose_group(list(ovs))):
        try:
            check_fits(cfg, measure=measure)
        except ConfigError as exc:
            if not values:
                raise
            sampled = ", ".join(f"{k}={v}" for k, v in values.items())
            key = f"search.params.{exc.key}" if exc.key in values else exc.key
            raise ConfigError(key, exc.value, exc.valid,
                              f"the largest trial of the search space ({sampled}): {exc}") from exc
