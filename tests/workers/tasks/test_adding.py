"""workers/tasks/adding.py: the adding problem. Two channels (values U[0, 1), a mask with one 1 in each half),
the target is the sum of the two marked values, scored at the last step by squared error; always predicting 1
scores the variance of that sum, 1/6; solved at MSE ≤ 0.01; the span is the whole sequence."""
from __future__ import annotations

import pytest
import torch

from workers.config import TaskConfig, TaskName
from workers.tasks.adding import Adding


def task(seq_len: int = 20, seed: int = 0) -> Adding:
    return Adding(TaskConfig(name=TaskName.adding, seq_len=seq_len, val_size=16, test_size=16), seed)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_attributes():
    t = task(20)
    assert (t.name, t.length, t.input_size, t.output_size) == ("adding", 20, 2, 1)
    assert (t.classification, t.per_step, t.baseline_accuracy) == (False, False, None)
    assert t.baseline_loss == pytest.approx(1 / 6) and t.span() == 20


@pytest.mark.parametrize("seq_len", [2, 7, 20])
def test_mask_marks_one_step_in_each_half(seq_len):
    b = task(seq_len).batch(500, gen())
    assert b.x.shape == (500, seq_len, 2) and b.x.dtype == torch.float32
    values, mask = b.x[..., 0], b.x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    half = seq_len // 2
    assert ((mask == 0) | (mask == 1)).all()
    assert (mask[:, :half].sum(1) == 1).all() and (mask[:, half:].sum(1) == 1).all()


def test_marked_positions_cover_each_half():
    b = task(10).batch(2000, gen(1))
    positions = b.x[..., 1].nonzero()[:, 1].view(2000, 2)
    assert set(positions[:, 0].tolist()) == set(range(5)) and set(positions[:, 1].tolist()) == set(range(5, 10))


def test_target_is_the_sum_of_the_two_marked_values():
    b = task(20).batch(64, gen(2))
    assert b.y.shape == (64,) and b.y.dtype == torch.float32
    for row in range(64):
        first, second = b.x[row, :, 1].nonzero()[:, 0].tolist()
        assert b.y[row].item() == pytest.approx(b.x[row, first, 0].item() + b.x[row, second, 0].item())


def test_predicting_one_scores_the_baseline():
    """Var(U1 + U2) = 2/12: the mean squared error of always predicting the mean sum, 1."""
    t = task(20)
    b = t.batch(20000, gen(3))
    assert b.y.mean().item() == pytest.approx(1.0, abs=0.01)
    measured = t.loss(torch.ones(20000, 20, 1), b.y).item()
    assert measured == pytest.approx(1 / 6, abs=0.006)
    assert not t.solved(t.evaluate(torch.ones(20000, 20, 1), b.y))


def test_only_the_last_step_is_scored_and_the_solved_rule():
    t = task(20)
    b = t.batch(32, gen(4))
    out = torch.full((32, 20, 1), 5.0)
    out[:, -1, 0] = b.y
    scores = t.evaluate(out, b.y)
    assert scores == {"loss": 0.0, "accuracy": None} and t.solved(scores)
    assert t.solved({"loss": 0.01}) and not t.solved({"loss": 0.0101})


def test_deterministic_given_the_generator():
    a, b, c = task().batch(16, gen(5)), task().batch(16, gen(5)), task().batch(16, gen(6))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.x, c.x)
