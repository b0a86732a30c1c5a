"""Configuration: the Hydra tree in `conf/` composed and validated into one typed study config.

    compose.py         compose `conf/` with overrides -> `Composed` (root config, resolved YAML, overrides)
    schema.py          the typed keys beyond one trial (search, study, cluster, tracking, nightly, expect)
    overrides.py       overrides parsed by Hydra's own grammar; the config groups they may choose from
    hydra_errors.py    Hydra/OmegaConf exceptions turned into one ConfigError naming key, value and what is valid
    trial_composer.py  the trial configs of one study, composed fast (Hydra once, then copies)
    objectives.py      a trial's config values and objective values, read back
"""
from study.config.compose import Composed, compose_root, compose_trial
from study.config.objectives import lookup, objective_values
from study.config.schema import OBJECTIVE_METRICS, ClusterConfig, NightlyConfig, RootConfig, StudyConfig, validate_root
from study.config.trial_composer import TrialComposer

__all__ = ["Composed", "compose_root", "compose_trial", "lookup", "objective_values", "OBJECTIVE_METRICS",
           "ClusterConfig", "NightlyConfig", "RootConfig", "StudyConfig", "validate_root", "TrialComposer"]
