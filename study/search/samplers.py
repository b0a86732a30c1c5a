"""Optuna samplers and pruners from `study.*`, set explicitly and seeded (Optuna 5 changed defaults:
TPE multivariate and constant liar on; we spell out what we use so studies are reproducible).

- tpe: TPESampler(seed, multivariate, group — conditional spaces —, constant_liar for parallel trials)
- random, qmc (Sobol, scrambled), cmaes (falls back to random for categoricals), gp
- grid: every combination of the search space's choice(...) and range(...) values
Pruners see the validation score reported at each probe: median, successive halving, hyperband.
"""
from __future__ import annotations

import optuna

from study.config.schema import Pruner, Sampler, StudyConfig
from study.search.space import SearchSpace


class StudyGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose end-of-grid `study.stop()` is left out: it only works inside
    `study.optimize()`, and the runner counts trials itself (ask/tell)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_sampler(cfg: StudyConfig, space: SearchSpace) -> optuna.samplers.BaseSampler:
    seed = cfg.seed
    if cfg.sampler == Sampler.tpe:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=min(10, max(1, cfg.n_trials // 4)))
    if cfg.sampler == Sampler.random:
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == Sampler.grid:
        return StudyGridSampler(space.grid(), seed=seed)
    if cfg.sampler == Sampler.qmc:
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    if cfg.sampler == Sampler.cmaes:
        return optuna.samplers.CmaEsSampler(seed=seed, independent_sampler=optuna.samplers.RandomSampler(seed=seed))
    return optuna.samplers.GPSampler(seed=seed)


def make_pruner(cfg: StudyConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner in (Pruner.median, Pruner.median_health):
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials,
                                           n_warmup_steps=cfg.pruner_warmup_steps)
    if cfg.pruner == Pruner.successive_halving:
        return optuna.pruners.SuccessiveHalvingPruner()
    if cfg.pruner == Pruner.hyperband:
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
