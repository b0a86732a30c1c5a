"""Compose and validate configurations from the Hydra tree in `conf/`.

`conf/config.yaml` is checked against the structured schema `study.schema.RootConfig` (registered in
Hydra's ConfigStore as `root_schema`): one trial's `task`/`model`/`train` plus the study around it
(`search`, `study`, `cluster`, `tracking`), with `experiment=<name>` overlays from `conf/experiment/`.
The tree is found as the package `conf`, so it works from any working directory and from a wheel.

    compose_trial(["model.cell=lstm"])   -> TrialConfig  (task/model/train only; ranges checked by
                                                          workers.config.validate)
    compose_root(["experiment=demo"])    -> Composed     (the typed trial and root, the overrides and the
                                                          resolved YAML; ranges checked by validate_root)

Every failure is raised as one exception type, `ConfigError` (a subclass of `workers.config.ConfigError`,
so `except workers.config.ConfigError` catches it too), whose message names the key, the bad value and what
is valid. The Hydra/OmegaConf exceptions are read through their attributes (`full_key`, `key`,
`object_type`, `MissingConfigException.options`) and the parsed overrides, not by parsing their messages.
"""
from __future__ import annotations

import dataclasses
import math
import re
import threading
import types
import typing
from contextlib import contextmanager
from enum import Enum
from importlib.resources import files
from typing import Any, Iterator, Optional, Sequence

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, Sweep
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.version import VersionBase
from omegaconf import DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from study.schema import Pruner, RootConfig
from workers import config as wconfig
from workers.config import TrialConfig

__all__ = ["ConfigError", "Composed", "register_schema", "compose_trial", "compose_root", "validate_root",
           "resolved_yaml", "SCHEMA_NAME", "CONFIG_MODULE", "OBJECTIVE_METRICS", "STUDY_NAME_PATTERN"]

SCHEMA_NAME = "root_schema"      # the ConfigStore name that conf/config.yaml's defaults list refers to
CONFIG_MODULE = "conf"           # the package that holds the YAML tree
_ROOT_CONFIG = "config"

# The numbers of summary.json's `final` section that a study can optimize (study.objectives[].metric).
OBJECTIVE_METRICS = ("final.test_loss", "final.baseline_ratio", "final.accuracy", "final.wall_s",
                     "final.seq_per_s", "final.steps_to_solve")
# study.name: used in Optuna storage names, MLflow experiment names and directory names.
STUDY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Hydra's GlobalHydra and the ConfigStore are process-wide singletons: compose one config at a time.
_lock = threading.RLock()


class ConfigError(wconfig.ConfigError):
    """A bad configuration: `key`, `value` and `valid` (a description of the valid values).

    The message defaults to workers.config's "key='value' is invalid; valid: ..." form; errors that are
    not about a value (an unknown key, a malformed override) pass their own `message`.
    """

    def __init__(self, key: str, value: Any, valid: str, message: Optional[str] = None):
        super().__init__(key, value, valid)
        if message is not None:
            self.args = (message,)

    @property
    def message(self) -> str:
        return str(self)


@dataclasses.dataclass
class Composed:
    """A composed, validated root config."""

    trial: TrialConfig          # task/model/train: what one trial runs (before the search's values)
    root: RootConfig            # everything, typed (enums as members; search.params/conditions plain dicts)
    overrides: list[str]        # the overrides it was composed with, as given
    yaml: str                   # the resolved config as YAML (enums as their string values)


# ----------------------------------------------------------------------------------------------------
# Public API


def register_schema() -> None:
    """Store `study.schema.RootConfig` in Hydra's ConfigStore as `root_schema` (idempotent)."""
    with _lock:
        cs = ConfigStore.instance()
        try:
            cs.load(f"{SCHEMA_NAME}.yaml")
        except Exception:  # hydra.plugins.config_source.ConfigLoadError: not stored yet
            cs.store(name=SCHEMA_NAME, node=RootConfig)


def compose_trial(overrides: Sequence[str] = ()) -> TrialConfig:
    """The validated TrialConfig for `overrides` (Hydra override syntax, e.g. "model.cell=lstm").

    The whole root is composed (so `experiment=demo` applies and every key is type-checked), then only
    task/model/train are taken and range-checked; the study's own ranges are compose_root's business.
    Raises ConfigError for a malformed or sweep override, an unknown key or config-group option, a value
    of the wrong type or choice, or a value out of range.
    """
    _, data, _ = _compose(_as_list(overrides))
    return _trial(data)


def compose_root(overrides: Sequence[str] = ()) -> Composed:
    """The validated root config for `overrides`: trial, typed root, the overrides and the YAML.

    Raises ConfigError as compose_trial does, and for a study/cluster value out of range (validate_root).
    """
    overrides = _as_list(overrides)
    cfg, data, parsed = _compose(overrides)
    with _hydra_errors(overrides, parsed):
        root = OmegaConf.to_object(cfg)  # RootConfig, enums as members
    assert isinstance(root, RootConfig)
    validate_root(root)
    return Composed(trial=TrialConfig(task=root.task, model=root.model, train=root.train), root=root,
                    overrides=overrides, yaml=OmegaConf.to_yaml(OmegaConf.create(data)))


def validate_root(root: RootConfig) -> RootConfig:
    """Check the ranges that the schema's types cannot express; raise ConfigError on the first bad key.

    The trial part is checked by workers.config.validate, the rest here.
    """
    with _range_errors():
        wconfig.validate(TrialConfig(task=root.task, model=root.model, train=root.train))

    s, c = root.study, root.cluster
    _check(isinstance(s.name, str) and STUDY_NAME_PATTERN.fullmatch(s.name) is not None, "study.name",
           s.name, "a non-empty name of letters, digits, '_', '.' and '-' that starts with a letter or "
           "digit")
    _check(s.n_trials >= 1, "study.n_trials", s.n_trials, "an integer ≥ 1")
    _check(len(s.objectives) >= 1, "study.objectives", [], "at least one {metric, direction}")
    for i, objective in enumerate(s.objectives):
        _check(objective.metric in OBJECTIVE_METRICS, f"study.objectives[{i}].metric", objective.metric,
               "one of " + ", ".join(OBJECTIVE_METRICS) + " (the numbers of summary.json's final section)")
    if len(s.objectives) > 1 and s.pruner != Pruner.none:
        raise ConfigError("study.pruner", s.pruner.value, "none with several objectives",
                          f"study.pruner={s.pruner.value!r} with {len(s.objectives)} objectives: pruning "
                          "needs a single objective; set study.pruner=none")
    _check(math.isfinite(s.timeout_s) and s.timeout_s >= 0, "study.timeout_s", s.timeout_s,
           "a number of seconds ≥ 0 (0 = no limit)")
    _check(s.pruner_warmup_steps >= 0, "study.pruner_warmup_steps", s.pruner_warmup_steps, "an integer ≥ 0")
    _check(s.pruner_startup_trials >= 0, "study.pruner_startup_trials", s.pruner_startup_trials,
           "an integer ≥ 0")

    cpu, gpu = c.trial_resources.cpu, c.trial_resources.gpu
    _check(math.isfinite(cpu) and cpu > 0, "cluster.trial_resources.cpu", cpu, "a number > 0")
    _check(math.isfinite(gpu) and gpu >= 0, "cluster.trial_resources.gpu", gpu,
           "a number ≥ 0 (a fraction shares a GPU)")
    _check(c.max_concurrent >= 0, "cluster.max_concurrent", c.max_concurrent,
           "an integer ≥ 0 (0 = as many as the resources allow)")
    _check(c.max_requeues >= 0, "cluster.max_requeues", c.max_requeues, "an integer ≥ 0")
    _check(c.num_cpus >= 0, "cluster.num_cpus", c.num_cpus, "an integer ≥ 0 (0 = all of this machine)")
    return root


def resolved_yaml(cfg: TrialConfig) -> str:
    """The fully resolved trial config as YAML (enums as their string values)."""
    return OmegaConf.to_yaml(OmegaConf.create(wconfig.to_dict(cfg)))


# ----------------------------------------------------------------------------------------------------
# Composition


def _as_list(overrides: Sequence[str]) -> list[str]:
    return [overrides] if isinstance(overrides, str) else list(overrides)


def _compose(overrides: list[str]) -> tuple[DictConfig, dict, list[Override]]:
    """Compose conf/config.yaml with `overrides`: the config, its resolved plain form (enums as str) and
    the parsed overrides.

    Refuses keys outside RootConfig (Hydra lets `+key=...` add them).
    """
    parsed = _parse_overrides(overrides)
    register_schema()
    with _lock, _hydra_context(), _hydra_errors(overrides, parsed):
        cfg = compose(_ROOT_CONFIG, overrides=overrides)
        data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(data, dict)
    _check_known_keys(data, RootConfig, "", parsed)
    return cfg, data, parsed


def _trial(data: dict) -> TrialConfig:
    """The validated TrialConfig from the task/model/train sections of a composed root."""
    with _range_errors():
        return wconfig.from_dict({k: data[k] for k in ("task", "model", "train")})


@contextmanager
def _range_errors() -> Iterator[None]:
    """Raise workers.config's ConfigError (a value out of range) as this module's ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except wconfig.ConfigError as exc:
        raise ConfigError(exc.key, exc.value, exc.valid) from exc


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(key, value, valid)


# ----------------------------------------------------------------------------------------------------
# Hydra plumbing


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


def _parse_overrides(overrides: list[str]) -> list[Override]:
    """Parse the overrides with Hydra's own grammar; refuse malformed and sweep overrides."""
    for o in overrides:
        if not isinstance(o, str):
            raise ConfigError(repr(o), o, "a string key=value",
                              f"override {o!r} is not a string; overrides look like key=value")
    parser = OverridesParser.create()
    parsed: list[Override] = []
    for line in overrides:
        try:
            ov = parser.parse_override(line)
        except OverrideParseException as exc:
            detail = _first_line(exc.message.split("\n", 1)[1] if "\n" in exc.message else exc.message)
            raise ConfigError(
                line, line, "key=value, +key=value, ++key=value or ~key",
                f"override {line!r} is malformed: {detail}; expected key=value (Hydra's override grammar: "
                "https://hydra.cc/docs/advanced/override_grammar/basic/)") from exc
        except HydraException as exc:  # e.g. sweep syntax that cannot be turned into a value
            raise ConfigError(line, line, "key=value", f"override {line!r} is malformed: {_first_line(str(exc))}"
                              ) from exc
        if not ov.key_or_group:
            raise ConfigError(line, line, "key=value",
                              f"override {line!r} is malformed: the key before '=' is missing")
        if ov.is_sweep_override():
            raise ConfigError(
                ov.key_or_group, line, "a single value",
                f"override {line!r} is a sweep; a config takes one value per key "
                "(sweeps such as choice(...), range(...) and a,b belong in a search space)")
        inner = _nested_sweep(ov.value()) if ov.type != OverrideType.DEL else None
        if inner is not None:  # `++search.params={k: choice(1,2)}`: Hydra reads an unquoted sweep object
            key = f"{ov.key_or_group}.{inner}" if not inner.startswith("[") else ov.key_or_group + inner
            raise ConfigError(
                key, line, "a quoted string",
                f"override {line!r}: {key} is a sweep inside {{...}} or [...], which Hydra does not read as a "
                "value; quote the expression as a string, e.g. '++search.params={train.lr: \"choice(1e-3, 1e-2)\"}'")
        if ov.type == OverrideType.ADD and ov.key_or_group in _config_groups():
            # every group is in conf/config.yaml's defaults list, so Hydra's `+group=x` cannot add it
            value = ov.value()
            raise ConfigError(ov.key_or_group, value, "one of " + ", ".join(_group_options(ov.key_or_group)),
                              f"override {line!r}: {ov.key_or_group} is already in the defaults list; "
                              f"choose its option with {ov.key_or_group}={value}")
        if ov.type != OverrideType.DEL and ov.value() is None and ov.key_or_group in _config_groups():
            options = _group_options(ov.key_or_group)
            raise ConfigError(ov.key_or_group, None, "one of " + ", ".join(options))
        parsed.append(ov)
    return parsed


def _nested_sweep(value: Any, path: str = "") -> Optional[str]:
    """The dotted path of the first sweep (choice(...), range(...), …) inside a dict or list value."""
    if isinstance(value, Sweep):
        return path
    if isinstance(value, dict):
        items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for where, v in items:
        found = _nested_sweep(v, where)
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------------------------------
# Turning Hydra / OmegaConf exceptions into ConfigError


@contextmanager
def _hydra_errors(overrides: list[str], parsed: list[Override]) -> Iterator[None]:
    """Raise what Hydra or OmegaConf raise inside as a ConfigError naming key, value and valid values."""
    try:
        yield
    except ConfigError:
        raise
    except MissingConfigException as exc:
        raise _missing_config_error(exc) from exc
    except oc_errors.OmegaConfBaseException as exc:
        raise _omegaconf_error(exc, parsed) from exc
    except ConfigCompositionException as exc:
        cause = exc.__cause__
        if isinstance(cause, oc_errors.OmegaConfBaseException):
            raise _omegaconf_error(cause, parsed) from exc
        raise _composition_error(exc, overrides) from exc
    except (HydraException, ValueError, TypeError) as exc:  # e.g. Hydra's ValueError for `task=null`
        raise _composition_error(exc, overrides) from exc


def _missing_config_error(exc: MissingConfigException) -> ConfigError:
    """`task=nope`: an option that is not in the config group."""
    missing = exc.missing_cfg_file or ""
    group, _, name = missing.rpartition("/")
    options = list(exc.options or [])
    if not group:  # the primary config itself, or a group with no options at all
        if options:
            return ConfigError(missing, missing, "one of " + ", ".join(options))
        return ConfigError(missing, missing, "an existing config",
                           f"{_first_line(str(exc))} (no such config or config group)")
    if not options:
        groups = _config_groups()
        return ConfigError(group, name, "one of the config groups " + ", ".join(groups),
                           f"{group} is not a config group; valid groups: {', '.join(groups)}")
    return ConfigError(group.replace("/", "."), name, "one of " + ", ".join(sorted(options)))


def _omegaconf_error(exc: oc_errors.OmegaConfBaseException, parsed: list[Override]) -> ConfigError:
    full_key = str(getattr(exc, "full_key", None) or "")
    key = getattr(exc, "key", None)
    object_type = getattr(exc, "object_type", None)
    parent = full_key.rpartition(".")[0] if full_key else ""

    if isinstance(exc, (oc_errors.ConfigAttributeError, oc_errors.ConfigKeyError)):
        return _unknown_key_error(full_key or str(key), parsed, object_type)

    if isinstance(exc, oc_errors.ValidationError):
        value = _override_value(parsed, full_key, object_type, key)
        if value is _NOTHING:
            value = _value_from_message(exc)
        ftype = _field_type(object_type, key)
        valid = _describe_type(ftype) if ftype is not None else _first_line(getattr(exc, "msg", str(exc)))
        return ConfigError(full_key, value, valid)

    if isinstance(exc, oc_errors.ConfigTypeError) and object_type is not None and key is not None:
        # e.g. `~model.cell`: a structured config cannot lose a field
        return ConfigError(full_key, None, "set it to a value instead",
                           f"{full_key} cannot be deleted: it is a field of the schema "
                           f"({getattr(object_type, '__name__', object_type)}); set it to a value instead")

    # Interpolation errors (`train.steps=${oc.env:NOPE}`) and anything else: key + OmegaConf's reason.
    value = _override_value(parsed, full_key)
    reason = _first_line(getattr(exc, "msg", None) or str(exc))
    where = full_key or parent or "config"
    shown = "" if value is _NOTHING else f"={value!r}"
    return ConfigError(where, None if value is _NOTHING else value, reason,
                       f"{where}{shown} is invalid: {reason}")


def _composition_error(exc: Exception, overrides: list[str]) -> ConfigError:
    """A Hydra composition failure that carries no OmegaConf cause (e.g. `+model.cell=lstm`)."""
    reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    shown = " ".join(overrides) if overrides else "(no overrides)"
    return ConfigError(shown, overrides, reason, f"cannot compose the config with {shown}: {reason}")


def _unknown_key_error(full_key: str, parsed: list[Override], object_type: Any) -> ConfigError:
    mapping = _free_mapping(full_key)
    if mapping is not None:  # e.g. search.params.model.lr=...: a new key of a free-form mapping
        # OmegaConf names the first missing part (search.params.model); the override has the whole key
        full_key = next((o.key_or_group for o in reversed(parsed)
                         if o.key_or_group.startswith(full_key + ".")), full_key)
        value = _override_value(parsed, full_key)
        rest = full_key[len(mapping) + 1:]
        return ConfigError(full_key, None if value is _NOTHING else value, f"++{mapping}={{...}}",
                           f"{mapping} has no key {rest!r} to override; add keys to it with "
                           f"'++{mapping}={{{rest}: ...}}' (quote values such as 'choice(a, b)')")
    value = _override_value(parsed, full_key)
    parent, _, _ = full_key.rpartition(".")
    names = _field_names(object_type)
    where = f" under {parent}" if parent else ""
    valid = ", ".join(names) if names else "(none)"
    return ConfigError(full_key, None if value is _NOTHING else value, "keys " + valid,
                       f"{full_key} is not a config key; valid keys{where}: {valid}")


def _check_known_keys(data: dict, schema: type, prefix: str, parsed: list[Override]) -> None:
    """Refuse keys that are not schema fields (appended with `+key=...`, which Hydra allows)."""
    names = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for k, v in data.items():
        if k not in names:
            full = f"{prefix}{k}"
            raise _unknown_key_error(full, parsed, schema)
        t = hints.get(k)
        if isinstance(v, dict) and dataclasses.is_dataclass(t):
            _check_known_keys(v, t, f"{prefix}{k}.", parsed)


# ----------------------------------------------------------------------------------------------------
# Helpers


def _free_mapping(full_key: str) -> Optional[str]:
    """The free-form mapping of RootConfig (a dict field such as search.params) that `full_key` lies
    inside, or None. Its own keys are dotted config keys, which OmegaConf splits into nested keys."""
    schema: Any = RootConfig
    parts = full_key.split(".")
    for i, part in enumerate(parts[:-1]):
        if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
            return None
        schema = typing.get_type_hints(schema).get(part)
        if typing.get_origin(schema) is dict:
            return ".".join(parts[: i + 1])
    return None


class _Nothing:
    def __repr__(self) -> str:
        return "<nothing>"


_NOTHING: Any = _Nothing()


def _override_value(parsed: list[Override], full_key: str, object_type: Any = None, key: Any = None) -> Any:
    """The value an override gave `full_key` (the first that the schema refuses, when several did)."""
    hits = [o for o in parsed if o.key_or_group == full_key and o.type != OverrideType.DEL]
    if not hits:
        return _NOTHING
    if len(hits) > 1 and dataclasses.is_dataclass(object_type) and key is not None:
        for o in hits:
            try:
                node = OmegaConf.structured(object_type)
                node[key] = o.value()
            except Exception:
                return o.value()
    return hits[-1].value()


_VALUE_PATTERNS = (re.compile(r"^Value '(.*)' (?:of type|is not)"), re.compile(r"^Invalid value '(.*)', "))


def _value_from_message(exc: Exception) -> Any:
    """Last resort for a bad value that came from a YAML file rather than an override."""
    msg = _first_line(getattr(exc, "msg", None) or str(exc))
    for pattern in _VALUE_PATTERNS:
        m = pattern.match(msg)
        if m:
            return m.group(1)
    return None


def _field_type(object_type: Any, key: Any) -> Any:
    if not (isinstance(object_type, type) and dataclasses.is_dataclass(object_type)) or key is None:
        return None
    try:
        return typing.get_type_hints(object_type).get(str(key))
    except Exception:
        return None


def _field_names(object_type: Any) -> list[str]:
    if isinstance(object_type, type) and dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type)]
    return []


def _describe_type(t: Any) -> str:
    """A short description of the values a schema type accepts."""
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        desc = " or ".join(_describe_type(a) for a in args)
        return desc + " or null" if len(args) < len(typing.get_args(t)) else desc
    if isinstance(t, type) and issubclass(t, Enum):
        return "one of " + ", ".join(str(m.value) for m in t)
    if t is bool:
        return "true or false"
    if t is int:
        return "an integer"
    if t is float:
        return "a number"
    if t is str:
        return "a string"
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return "a mapping with keys " + ", ".join(_field_names(t))
    return getattr(t, "__name__", str(t))


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return str(text).strip()


def _config_groups() -> list[str]:
    """The top-level config groups of the `conf` tree (directories with YAML files)."""
    root = files(CONFIG_MODULE)
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and any(c.name.endswith(".yaml") for c in p.iterdir()))


def _group_options(group: str) -> list[str]:
    """The options (YAML file names without .yaml) of a config group, e.g. task -> adding, ..."""
    node = files(CONFIG_MODULE)
    for part in group.split("/"):
        node = node.joinpath(part)
    return sorted(p.name[: -len(".yaml")] for p in node.iterdir() if p.name.endswith(".yaml"))
