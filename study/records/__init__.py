"""The Optuna vocabulary of gradstudy: what a study holds and how it is counted.

    attrs.py         user attribute names of studies and trials, each defined once; `TrialRecord`
    trials.py        the counting and ranking rules (which trials count towards n_trials, best trials)
    results.py       a study read back: counts by state, best trials, health mix (status, list, nightly)
    expectations.py  published claims as checked `expect:` rules, evaluated on a study's trials
"""
from study.records.attrs import StudyAttr, TrialAttr, TrialRecord, describe_search
from study.records.expectations import RuleError, check_rule, evaluate
from study.records.results import finished, status
from study.records.trials import best_per_cell, best_trial, counts_towards_total, health_mix, state_counts

__all__ = ["StudyAttr", "TrialAttr", "TrialRecord", "describe_search", "RuleError", "check_rule", "evaluate",
           "finished", "status", "best_per_cell", "best_trial", "counts_towards_total", "health_mix", "state_counts"]
