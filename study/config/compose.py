"""Compose and validate configurations from the Hydra tree in `conf/`.

`conf/config.yaml` is checked against the structured schema `study.config.schema.RootConfig` (registered in
Hydra's ConfigStore as `root_schema`): one trial's `task`/`model`/`train` plus the study around it
(`search`, `study`, `cluster`, `tracking`), with `experiment=<name>` overlays from `conf/experiment/`.
The tree is found as the package `conf`, so it works from any working directory and from a wheel.

    compose_trial(["model.cell=lstm"])   -> TrialConfig  (task/model/train only; ranges checked by
                                                          workers.config.validate)
    compose_root(["experiment=demo"])    -> Composed     (the typed trial and root, the overrides and the
                                                          resolved YAML; ranges checked by
                                                          study.config.schema.validate_root)

Every failure is raised as one exception type, `workers.config.ConfigError`, whose message names the key,
the bad value and what is valid: overrides are parsed and refused in study/config/overrides.py, Hydra's and
OmegaConf's exceptions translated in study/config/hydra_errors.py.
"""
from __future__ import annotations

import dataclasses
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.types import Override
from hydra.version import VersionBase
from omegaconf import DictConfig, OmegaConf

from study.config.hydra_errors import check_known_keys, hydra_errors
from study.config.overrides import CONFIG_MODULE, parse_overrides
from study.config.schema import OBJECTIVE_METRICS, STUDY_NAME_PATTERN, RootConfig, validate_root
from workers import config as wconfig
from workers.config import ConfigError, TrialConfig

__all__ = ["ConfigError", "Composed", "register_schema", "compose_trial", "compose_root", "validate_root",
           "resolved_yaml", "SCHEMA_NAME", "CONFIG_MODULE", "OBJECTIVE_METRICS", "STUDY_NAME_PATTERN"]

SCHEMA_NAME = "root_schema"      # the ConfigStore name that conf/config.yaml's defaults list refers to
_ROOT_CONFIG = "config"

# Hydra's GlobalHydra and the ConfigStore are process-wide singletons: compose one config at a time.
_lock = threading.RLock()


@dataclasses.dataclass
class Composed:
    """A composed, validated root config."""

    trial: TrialConfig          # task/model/train: what one trial runs (before the search's values)
    root: RootConfig            # everything, typed (enums as members; search.params/conditions plain dicts)
    overrides: list[str]        # the overrides it was composed with, as given
    yaml: str                   # the resolved config as YAML (enums as their string values)


def register_schema() -> None:
    """Store `study.config.schema.RootConfig` in Hydra's ConfigStore as `root_schema` (idempotent)."""
    with _lock:
        cs = ConfigStore.instance()
        try:
            cs.load(f"{SCHEMA_NAME}.yaml")
        except Exception:  # hydra.plugins.config_source.ConfigLoadError: not stored yet
            cs.store(name=SCHEMA_NAME, node=RootConfig)


def compose_trial(overrides: Sequence[str] = (), alone: bool = False) -> TrialConfig:
    """The validated TrialConfig for `overrides` (Hydra override syntax, e.g. "model.cell=lstm").

    The whole root is composed (so `experiment=demo` applies and every key is type-checked), then only
    task/model/train are taken and range-checked; the study's own ranges are compose_root's business.
    Raises ConfigError for a malformed or sweep override, an unknown key or config-group option, a value
    of the wrong type or choice, or a value out of range. Whether the trial fits in memory is asked where it
    runs (workers/memory.py check_fits in run_trial) and, for a study, before its first trial
    (study/search/memory_check.py).
    `alone` (`gradstudy trial`: one trial outside a study) also refuses the keys one trial does not read.
    """
    _, data, parsed = compose_config(_as_list(overrides))
    if alone:
        refuse_unused(parsed)
    return wconfig.from_dict({k: data[k] for k in ("task", "model", "train")})


TRIAL_KEYS = ("task", "model", "train", "experiment")   # what one trial reads (an experiment: its task/model/train)


def refuse_unused(parsed) -> None:
    """A key that one trial does not read (study.*, search.*, cluster.*, tracking.*, nightly.*, expect) is a
    mistake on `gradstudy trial`: refused in one line that says where it belongs, rather than ignored."""
    for ov in parsed:
        top = ov.key_or_group.split(".")[0].split("[")[0]
        if top not in TRIAL_KEYS:
            raise ConfigError(ov.key_or_group, ov.input_line, "a task.*, model.*, train.* key or experiment=NAME",
                              f"`gradstudy trial` does not use {ov.key_or_group}: it runs one trial here, without "
                              "Optuna, Ray or MLflow, and reads only task.*, model.*, train.* and experiment=; "
                              "`gradstudy run` takes study.*, search.*, cluster.*, tracking.* and nightly.* keys "
                              "(study.n_trials=1 for a study of one trial)")


def compose_root(overrides: Sequence[str] = ()) -> Composed:
    """The validated root config for `overrides`: trial, typed root, the overrides and the YAML.

    Raises ConfigError as compose_trial does, and for a study/cluster value out of range (validate_root).
    """
    overrides = _as_list(overrides)
    cfg, data, parsed = compose_config(overrides)
    with hydra_errors(overrides, parsed):
        root = OmegaConf.to_object(cfg)  # RootConfig, enums as members
    assert isinstance(root, RootConfig)
    validate_root(root)
    return Composed(trial=TrialConfig(task=root.task, model=root.model, train=root.train), root=root,
                    overrides=overrides, yaml=OmegaConf.to_yaml(OmegaConf.create(data)))


def resolved_yaml(cfg: TrialConfig) -> str:
    """The fully resolved trial config as YAML (enums as their string values)."""
    return OmegaConf.to_yaml(OmegaConf.create(wconfig.to_dict(cfg)))


def _as_list(overrides: Sequence[str]) -> list[str]:
    return [overrides] if isinstance(overrides, str) else list(overrides)


def compose_config(overrides: list[str]) -> tuple[DictConfig, dict, list[Override]]:
    """Compose conf/config.yaml with `overrides`: the config, its resolved plain form (enums as str) and
    the parsed overrides.

    Refuses keys outside RootConfig (Hydra lets `+key=...` add them).
    """
    parsed = parse_overrides(overrides)
    register_schema()
    with _lock, _hydra_context(), hydra_errors(overrides, parsed):
        cfg = compose(_ROOT_CONFIG, overrides=overrides)
        data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(data, dict)
    check_known_keys(data, RootConfig, "", parsed)
    return cfg, data, parsed


@contextmanager
def _hydra_context() -> Iterator[None]:
    """Initialize Hydra on the `conf` package, and leave GlobalHydra as it was found afterwards.

    Works when called repeatedly, and also when the caller already initialized Hydra (e.g. inside a
    `@hydra.main` app): that instance is set aside while composing and put back after.
    """
    previous = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    previous_base = VersionBase.instance().version_base  # initialize_*() sets Hydra's version base
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            yield
    finally:
        gh = GlobalHydra.instance()
        gh.clear()
        if previous is not None:
            gh.hydra = previous
        VersionBase.instance().version_base = previous_base
