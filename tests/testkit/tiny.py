"""The suite's one tiny trial, defined in conf/experiment/test_tiny.yaml (the demo in small: an 8-unit vanilla
RNN on the adding problem with T = 10, 20 steps probed every 5; a local Ray of 2 CPUs, MLflow off).

    TINY                        the overrides of a tiny study, for the CLI and driver tests:
                                `cli.main(["run", *TINY, "study.name=x"])`, `compose_root(TINY + [...])`
    tiny_trial_config(**changes) the same trial as a workers.config.TrialConfig, for trials run in the test
                                process (`run_trial`): on the CPU, with held-out sets of 64 and 32 sequences,
                                then `changes` as `section__key=value` (`train__lr=0.1`, `train__clip__mode=...`)

A test that needs something else (longer trials, MLflow on, a cluster) says so on top: later overrides win.
"""
from __future__ import annotations

import copy
import functools

from workers.config import Device, TrialConfig

TINY = ["experiment=test_tiny"]


@functools.lru_cache(maxsize=1)
def _composed() -> TrialConfig:
    from study.config.compose import compose_trial

    return compose_trial(TINY)


def tiny_trial_config(**changes) -> TrialConfig:
    """The trial of conf/experiment/test_tiny.yaml, run in this process: on the CPU (never `auto`), with
    small held-out sets (task.test_size 64, task.val_size 32), then `changes`: keyword `section__key=value`
    (e.g. `model__hidden_size=16`, `train__clip__mode=ClipMode.norm`), set as given (not validated)."""
    cfg = copy.deepcopy(_composed())
    cfg.task.test_size, cfg.task.val_size = 64, 32
    cfg.train.device = Device.cpu
    for key, value in changes.items():
        *path, name = key.split("__")
        obj = cfg
        for part in path:
            obj = getattr(obj, part)
        assert hasattr(obj, name), key
        setattr(obj, name, value)
    return cfg
