"""Hydra and OmegaConf exceptions turned into one ConfigError that names the key, the bad value and what is
valid.

The exceptions are read through their attributes (`full_key`, `key`, `object_type`,
`MissingConfigException.options`) and the parsed overrides, not by parsing their messages (a regex over
OmegaConf's message is the last resort for a bad value that came from a YAML file). `check_known_keys`
refuses keys outside the schema that Hydra lets `+key=...` add.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from contextlib import contextmanager
from enum import Enum
from typing import Any, Iterator, Optional

from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf import errors as oc_errors

from study.config.overrides import config_groups, first_line
from study.config.schema import RootConfig
from workers.config import ConfigError


@contextmanager
def hydra_errors(overrides: list[str], parsed: list[Override]) -> Iterator[None]:
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
                           f"{first_line(str(exc))} (no such config or config group)")
    if not options:
        groups = config_groups()
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
        valid = _describe_type(ftype) if ftype is not None else first_line(getattr(exc, "msg", str(exc)))
        return ConfigError(full_key, value, valid)

    if isinstance(exc, oc_errors.ConfigTypeError) and object_type is not None and key is not None:
        # e.g. `~model.cell`: a structured config cannot lose a field
        return ConfigError(full_key, None, "set it to a value instead",
                           f"{full_key} cannot be deleted: it is a field of the schema "
                           f"({getattr(object_type, '__name__', object_type)}); set it to a value instead")

    # Interpolation errors (`train.steps=${oc.env:NOPE}`) and anything else: key + OmegaConf's reason.
    value = _override_value(parsed, full_key)
    reason = first_line(getattr(exc, "msg", None) or str(exc))
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


def check_known_keys(data: dict, schema: type, prefix: str, parsed: list[Override]) -> None:
    """Refuse keys that are not schema fields (appended with `+key=...`, which Hydra allows)."""
    names = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for k, v in data.items():
        if k not in names:
            full = f"{prefix}{k}"
            raise _unknown_key_error(full, parsed, schema)
        t = hints.get(k)
        if isinstance(v, dict) and dataclasses.is_dataclass(t):
            check_known_keys(v, t, f"{prefix}{k}.", parsed)


# ----------------------------------------------------------------------------------------------------
# Reading keys, values and types


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
    msg = first_line(getattr(exc, "msg", None) or str(exc))
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
