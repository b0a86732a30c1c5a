"""Optuna samplers and pruners from `study.*`, set explicitly and seeded (Optuna 5 changed defaults:
TPE multivariate and constant liar on; we spell out what we use so studies are reproducible).

- tpe: TPESampler(seed, multivariate, group — conditional spaces —, constant_liar for parallel trials)
- random, qmc (Sobol, scrambled, over the whole declared space: `StudyQMCSampler`), cmaes (falls back to
  random for categoricals), gp
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


class StudyQMCSampler(optuna.samplers.QMCSampler):
    """QMCSampler over the study's whole declared space, conditional keys included.

    Optuna's infers its space from the first finished trial (or, before one finishes, from those running) and
    keys its Sobol sequence by that space. In a conditional space (model.activation only where model.cell=rnn)
    that space then depends on which trial finished first: a gru trial finishing before the first rnn one gives
    a three-key space whose sequence starts again at point 0, and a trial drew the same point as one before it
    (trials 1 and 2 of a 105-trial study, both gru λ1 = 2.64 T = 20, when the machine was loaded). Over the
    declared space, every trial takes the next point of one sequence, whatever order trials finish in; a key a
    trial does not sample (its condition fails) leaves its coordinate unused."""

    def __init__(self, space: SearchSpace, seed: int):
        super().__init__(qmc_type="sobol", scramble=True, seed=seed)
        self._declared = space.distributions()

    def infer_relative_search_space(self, study, trial):
        return dict(self._declared)


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
        return StudyQMCSampler(space, seed)
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
