"""Search spaces: `search.params` and `search.conditions` -> Optuna distributions sampled define-by-run.

    grammar.py     one `search.params` expression -> a `Param`; a sampled value back to a Hydra override
    conditions.py  when a parameter is sampled (`search.conditions`, and the built-in ones)
    space.py       the ordered search space of a study, sampled on an Optuna trial
    check.py       pre-flight: every search key and value checked against the trial schema
    samplers.py    Optuna samplers and pruners from `study.*`, explicit and seeded
"""
from study.search.check import validate_keys
from study.search.grammar import Param, SearchError, format_override, parse_param
from study.search.samplers import make_pruner, make_sampler
from study.search.space import SearchSpace

__all__ = ["validate_keys", "Param", "SearchError", "format_override", "parse_param", "make_pruner",
           "make_sampler", "SearchSpace"]
