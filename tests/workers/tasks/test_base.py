"""workers/tasks/base.py: what every task inherits. The per-element losses, the held-out sets (seeded from
seed·1000 + the split's offset, cached, only 'val' and 'test'), the scored part of the output (every step or
the last one), the final-step loss, the span capped to [1, L], accuracy and `evaluate`. Checked on two small
concrete tasks defined here."""
from __future__ import annotations

import math
from typing import Optional

import pytest
import torch

from workers.tasks.base import SPLIT_OFFSETS, Batch, Task, cross_entropy, squared_error


class Ramp(Task):
    """Regression: y is the running sum of the inputs (per step) or their total (last step)."""

    def __init__(self, seed: int = 3, per_step: bool = True, length: int = 6, span: int = 4):
        self.name, self.input_size, self.output_size, self.classification = "ramp", 1, 1, False
        self.per_step, self.length, self.baseline_loss, self.seed, self._span = per_step, length, 1.0, seed, span

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        x = torch.rand(size, self.length, 1, generator=generator)
        y = x[..., 0].cumsum(1)
        return Batch(x, y if self.per_step else y[:, -1])

    def dependency_span(self) -> int:
        return self._span

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return squared_error(pred, y)

    def solved(self, scores: dict) -> bool:
        return scores["loss"] < 0.1


class Sign(Ramp):
    """Classification at the last step: is the first input above 0.5?"""

    def __init__(self, seed: int = 3):
        super().__init__(seed, per_step=False)
        self.classification, self.output_size = True, 2
        self.baseline_accuracy: Optional[float] = 0.5

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        x = torch.rand(size, self.length, 1, generator=generator)
        return Batch(x, (x[:, 0, 0] > 0.5).long())

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy(pred, y)


def test_task_is_abstract():
    with pytest.raises(TypeError):
        Task()


def test_squared_error_per_element():
    y = torch.tensor([1.0, 2.0, 3.0])
    assert squared_error(torch.tensor([[0.0], [2.0], [5.0]]), y).tolist() == [1.0, 0.0, 4.0]   # [B, 1] vs [B]
    assert squared_error(torch.tensor([0.0, 2.0, 5.0]), y).tolist() == [1.0, 0.0, 4.0]
    per_step = squared_error(torch.zeros(2, 3, 1), torch.ones(2, 3))
    assert per_step.shape == (2, 3) and per_step.eq(1).all()


def test_cross_entropy_per_element():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 1] = 100.0                                   # certain and right
    y = torch.ones(2, 3, dtype=torch.long)
    loss = cross_entropy(logits, y)
    assert loss.shape == (2, 3)
    assert loss[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss[1, 2].item() == pytest.approx(math.log(4))   # uniform over 4 classes
    two = cross_entropy(torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([0]))
    assert two.item() == pytest.approx(-math.log(3 / 4))


def test_batch_to_keeps_everything():
    b = Batch(torch.ones(2, 3, 1), torch.zeros(2), torch.tensor([5, 7]))
    moved = b.to(torch.device("cpu"))
    assert torch.equal(moved.x, b.x) and torch.equal(moved.y, b.y) and moved.starts.tolist() == [5, 7]
    assert Batch(b.x, b.y).to(torch.device("cpu")).starts is None


def test_held_out_sets_are_seeded_per_split_and_cached():
    task = Ramp(seed=3)
    assert SPLIT_OFFSETS == {"val": 1, "test": 2}
    val, test = task.held_out("val", 8), task.held_out("test", 8)
    assert torch.equal(val.x, task.batch(8, torch.Generator().manual_seed(3001)).x)
    assert torch.equal(test.x, task.batch(8, torch.Generator().manual_seed(3002)).x)
    assert task.held_out("val", 8) is val and task.held_out("val", 4).x.shape[0] == 4
    assert torch.equal(Ramp(seed=3).held_out("test", 8).x, test.x)
    assert not torch.equal(Ramp(seed=4).held_out("test", 8).x, test.x)


@pytest.mark.parametrize("split", ["train", "Val", ""])
def test_held_out_refuses_other_splits(split):
    with pytest.raises(ValueError, match="valid: 'val', 'test'"):
        Ramp().held_out(split, 8)


def test_outputs_loss_and_final_step_loss_per_step():
    task = Ramp(per_step=True)
    b = task.batch(4, torch.Generator().manual_seed(0))
    out = torch.zeros(4, 6, 1)
    assert task.outputs(out) is out
    assert task.loss(out, b.y).item() == pytest.approx(b.y.pow(2).mean().item())
    assert task.final_step_loss(out, b.y).item() == pytest.approx(b.y[:, -1].pow(2).mean().item())
    exact_last = out.clone()
    exact_last[:, -1, 0] = b.y[:, -1]
    assert task.final_step_loss(exact_last, b.y).item() == 0.0 and task.loss(exact_last, b.y).item() > 0


def test_outputs_and_loss_at_the_last_step():
    task = Ramp(per_step=False)
    b = task.batch(4, torch.Generator().manual_seed(0))
    out = torch.randn(4, 6, 1)
    assert torch.equal(task.outputs(out), out[:, -1])
    out[:, -1, 0] = b.y                                    # right at the last step, whatever comes before
    assert task.loss(out, b.y).item() == 0.0 and task.final_step_loss(out, b.y).item() == 0.0
    scores = task.evaluate(out, b.y)
    assert scores == {"loss": 0.0, "accuracy": None} and task.solved(scores)


@pytest.mark.parametrize("declared,span", [(4, 4), (6, 6), (100, 6), (0, 1), (-3, 1)])
def test_span_is_capped_between_one_and_the_length(declared, span):
    assert Ramp(length=6, span=declared).span() == span


def test_accuracy_of_classification_tasks():
    task = Sign()
    y = torch.tensor([0, 1, 1, 0])
    out = torch.zeros(4, 6, 2)
    out[:, -1, 1] = torch.tensor([1.0, 1.0, -1.0, -1.0])   # predicts 1, 1, 0, 0: half right
    out[:, :-1, 1] = 9.0                                    # earlier steps are not scored
    assert task.accuracy(out, y) == 0.5
    scores = task.evaluate(out, y)
    assert scores["accuracy"] == 0.5 and scores["loss"] == pytest.approx(task.loss(out, y).item())
