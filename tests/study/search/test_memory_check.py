"""study/search/memory_check.py and where a trial is checked: the largest trial a search space can sample
(size keys at their largest, every combination of the others, a config group composed), refused before any trial
runs with the search key named; on a Ray cluster the driver checks `train.max_memory_gb` alone."""
from __future__ import annotations

import pytest

from study.config.compose import compose_root, compose_trial
from study.config.trial_composer import TrialComposer
from study.search.memory_check import check_memory, largest_trials
from study.search.space import SearchSpace
from testkit.tiny import TINY
from workers.config import Cell, ConfigError, TaskName
from workers.memory import estimate_bytes

BASE = [*TINY, "study.name=memory"]


def composer() -> TrialComposer:
    return TrialComposer(BASE)


def space(params: dict) -> SearchSpace:
    return SearchSpace.from_config(params, {})


def test_the_largest_trial_takes_each_size_at_its_largest_and_tries_every_cell_and_task():
    c = composer()
    trials = largest_trials(space({
        "model.cell": "choice(rnn, lstm)", "train.batch_size": "range(16, 129, 16)",
        "model.hidden_size": "choice(32, 64)", "task": "choice(adding, copy_memory)",
        "model.init_gain": "interval(0.5, 4)"}), c({}, []), c.from_overrides)
    assert len(trials) == 4                                   # 2 cells × 2 tasks; sizes at their largest
    assert {(cfg.model.cell, cfg.task.name) for _, cfg, _ in trials} == {
        (cell, task) for cell in (Cell.rnn, Cell.lstm) for task in (TaskName.adding, TaskName.copy_memory)}
    assert all((cfg.train.batch_size, cfg.model.hidden_size) == (128, 64) for _, cfg, _ in trials)
    sizes = [size for size, _, _ in trials]
    assert sizes == sorted(sizes, reverse=True) and sizes == [estimate_bytes(cfg) for _, cfg, _ in trials]
    _, cfg, values = trials[0]
    assert cfg.task.name == TaskName.copy_memory              # its 20 more steps and one-hot inputs
    assert values == {"model.cell": cfg.model.cell.value, "train.batch_size": 128, "model.hidden_size": 64,
                      "task": "copy_memory"}


def test_a_search_space_whose_largest_trial_cannot_fit_is_refused_naming_the_search_key():
    c = composer()
    huge = space({"train.batch_size": "choice(32, 100000000)", "model.init_gain": "choice(0.5, 2.0)"})
    with pytest.raises(ConfigError) as info:
        check_memory(huge, c({}, []), c.from_overrides)
    assert info.value.key == "search.params.train.batch_size"
    message = str(info.value)
    assert message.startswith("the largest trial of the search space (train.batch_size=100000000): "
                              "train.batch_size=100000000 × task.seq_len=10 × model.hidden_size=8")
    assert "needs about" in message and "\n" not in message
    check_memory(space({"train.batch_size": "choice(32, 64)"}), c({}, []), c.from_overrides)   # fits


def test_on_a_cluster_the_driver_checks_train_max_memory_gb_alone():
    c = composer()
    huge = space({"train.batch_size": "choice(32, 100000000)"})
    check_memory(huge, c({}, []), c.from_overrides, measure=False)     # the workers will say
    capped = space({"train.batch_size": "choice(32, 100000000)", "train.max_memory_gb": 64})
    with pytest.raises(ConfigError, match=r"train\.max_memory_gb=64\)"):
        check_memory(capped, c({}, []), c.from_overrides, measure=False)


def test_a_trial_too_big_is_refused_where_it_runs_not_by_composing_it(monkeypatch):
    """compose_trial only composes; the trial is checked once, where it runs (run_trial, before it allocates),
    and a study's largest trial before the first one (memory_check)."""
    from workers.trial import run_trial

    with pytest.raises(ConfigError, match=r"^task.test_size=1000 × task.seq_len=10 .* needs about .*"
                                          r"\(train.max_memory_gb=0.001\)"):
        run_trial(compose_trial([*TINY, "train.max_memory_gb=0.001"]))
    with pytest.raises(ConfigError, match="train.batch_size=100000000 × "):
        run_trial(compose_trial([*TINY, "train.batch_size=100000000"]))
    assert compose_trial([*TINY, "train.batch_size=100000000"]).train.batch_size == 100_000_000


def test_a_config_group_choice_too_big_is_refused():
    c = composer()
    huge = space({"task": "choice(adding, copy_memory)", "train.batch_size": "choice(32, 100000000)"})
    with pytest.raises(ConfigError) as info:
        check_memory(huge, c({}, []), c.from_overrides)
    assert "task=copy_memory" in str(info.value) and "train.batch_size=100000000" in str(info.value)


def test_the_runner_validates_the_largest_trial_before_anything_runs(home):
    from study.driver.runner import StudyRunner
    from study.storage.backend import journal_path

    runner = StudyRunner(compose_root([*BASE, '++search.params={train.batch_size: "choice(32, 100000000)"}']))
    with pytest.raises(ConfigError, match=r"^the largest trial of the search space \(train.batch_size=100000000"):
        runner.validate()
    assert not runner.validated and not journal_path().exists()
