"""Overrides parsed by Hydra's own grammar, and the config groups of the `conf` tree they may choose from.

`parse_overrides` refuses, each with a ConfigError naming the override and what is valid: a non-string, a
malformed override, a missing key, a sweep (`choice(...)`, `a,b`: sweeps belong in a search space), an
unquoted sweep inside a `{...}`/`[...]` value, `+group=x` for a group already in the defaults list, and
`group=null`.
"""
from __future__ import annotations

from importlib.resources import files
from typing import Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, Sweep
from hydra.errors import HydraException, OverrideParseException

from workers.config import ConfigError

CONFIG_MODULE = "conf"           # the package that holds the YAML tree


def parse_overrides(overrides: list[str]) -> list[Override]:
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
            detail = first_line(exc.message.split("\n", 1)[1] if "\n" in exc.message else exc.message)
            raise ConfigError(
                line, line, "key=value, +key=value, ++key=value or ~key",
                f"override {line!r} is malformed: {detail}; expected key=value (Hydra's override grammar: "
                "https://hydra.cc/docs/advanced/override_grammar/basic/)") from exc
        except HydraException as exc:  # e.g. sweep syntax that cannot be turned into a value
            raise ConfigError(line, line, "key=value", f"override {line!r} is malformed: {first_line(str(exc))}"
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
        if ov.type == OverrideType.ADD and ov.key_or_group in config_groups():
            # every group is in conf/config.yaml's defaults list, so Hydra's `+group=x` cannot add it
            value = ov.value()
            raise ConfigError(ov.key_or_group, value, "one of " + ", ".join(group_options(ov.key_or_group)),
                              f"override {line!r}: {ov.key_or_group} is already in the defaults list; "
                              f"choose its option with {ov.key_or_group}={value}")
        if ov.type != OverrideType.DEL and ov.value() is None and ov.key_or_group in config_groups():
            options = group_options(ov.key_or_group)
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


def config_groups() -> list[str]:
    """The top-level config groups of the `conf` tree (directories with YAML files)."""
    root = files(CONFIG_MODULE)
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and any(c.name.endswith(".yaml") for c in p.iterdir()))


def group_options(group: str) -> list[str]:
    """The options (YAML file names without .yaml) of a config group, e.g. task -> adding, ..."""
    node = files(CONFIG_MODULE)
    for part in group.split("/"):
        node = node.joinpath(part)
    return sorted(p.name[: -len(".yaml")] for p in node.iterdir() if p.name.endswith(".yaml"))


def first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return str(text).strip()
