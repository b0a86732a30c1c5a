"""The trial configs of one study, composed fast: Hydra once, then each trial's sampled values set on a copy.

A study's trials differ from its base (the study's overrides and `study.fixed`) only in the sampled search
values. Composing `base + sampled` with Hydra costs ~0.7 s per trial on this machine (the defaults tree and
every YAML file read again), which was most of a short trial's overhead. So the base is composed once, and
a trial's values are set with OmegaConf on a copy of that (typed, struct) config, resolved and validated
exactly as `compose_trial` does. A value that is not a leaf of the base (a config-group choice such as
`task=copy_memory`), or that the fast path cannot set, falls back to the full Hydra composition, which
gives the same config or the same ConfigError (tests/study/config/test_trial_composer.py compares the two).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from study.config.compose import compose_config, compose_trial
from workers import config as wconfig
from workers.config import TrialConfig

TRIAL_SECTIONS = ("task", "model", "train")


class TrialComposer:
    def __init__(self, base: Sequence[str]):
        self.base = list(base)
        self._cfg: DictConfig = compose_config(self.base)[0]     # a bad base: its ConfigError here, once
        self.fast = self.slow = 0                         # how many trials took each path

    def __call__(self, values: Mapping[str, Any], sampled: Sequence[str]) -> TrialConfig:
        """The TrialConfig of the base with `values` set; `sampled` are the same values as Hydra
        overrides (with the base's overrides of those keys left out), for the fallback."""
        fast = self._set(values)
        if fast is not None:
            self.fast += 1
            return fast
        self.slow += 1
        keys = {o.split("=", 1)[0] for o in sampled}
        return compose_trial([o for o in self.base if o.split("=", 1)[0].lstrip("+~") not in keys] + list(sampled))

    def from_overrides(self, overrides: Sequence[str]) -> TrialConfig:
        """The TrialConfig of the base with Hydra overrides (`key=value`, as the pre-flight search check
        writes them) set, their values read as Hydra reads them: the same config or ConfigError as
        `compose_trial(base + overrides)`."""
        parse = OverridesParser.create().parse_override
        values = {o.key_or_group: o.value() for o in map(parse, overrides)}
        return self(values, list(overrides))

    def _set(self, values: Mapping[str, Any]):
        if not all(key.split(".", 1)[0] in TRIAL_SECTIONS for key in values):
            return None
        cfg = copy.deepcopy(self._cfg)
        try:
            for key, value in values.items():
                node = OmegaConf.select(cfg, key, default=_MISSING)
                if node is _MISSING or isinstance(node, DictConfig) or OmegaConf.is_list(node):
                    return None           # not a leaf of the base: a config-group choice, a new key…
                OmegaConf.update(cfg, key, value, merge=False)
            # only leaves the base already has were set: no key can be unknown here (the base was checked)
            data = {k: OmegaConf.to_container(cfg[k], resolve=True, enum_to_str=True) for k in TRIAL_SECTIONS}
        except Exception:    # anything the fast path cannot tell: Hydra says it (or raises the ConfigError)
            return None
        return wconfig.from_dict(data)


_MISSING = object()

__all__ = ["TrialComposer"]
