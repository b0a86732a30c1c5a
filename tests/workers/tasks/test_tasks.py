"""The long-memory tasks: shapes, determinism, and the task definitions and baselines, measured."""
from __future__ import annotations

import math

import pytest
import torch

from workers.config import TaskConfig, TaskName
from workers.tasks import Batch, Task, make_task
from workers.tasks.mackey_glass import mackey_glass_series
from workers.tasks.temporal_order import intervals

T = 50
SIZES = dict(val_size=32, test_size=64)


def cfg(name: str, **kw) -> TaskConfig:
    seq_len = 64 if name == "digits" else T
    return TaskConfig(name=TaskName(name), **{"seq_len": seq_len, **SIZES, **kw})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ALL = [t.value for t in TaskName]
EXPECTED = {  # input_size, output_size, classification, per_step, length
    "adding": (2, 1, False, False, T),
    "copy_memory": (10, 9, True, True, T + 20),
    "temporal_order": (4, 4, True, False, T),
    "digits": (1, 10, True, False, 64),
    "mackey_glass": (1, 1, False, True, T),
}


# --- every task -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_attributes_and_shapes(name):
    task = make_task(cfg(name), seed=0)
    assert isinstance(task, Task) and task.name == name
    n_in, n_out, classification, per_step, length = EXPECTED[name]
    assert (task.input_size, task.output_size, task.classification, task.per_step, task.length) == \
        (n_in, n_out, classification, per_step, length)
    assert (task.baseline_accuracy is None) == (not classification)
    y_dtype = torch.long if classification else torch.float32
    y_shape = (length,) if per_step else ()
    for b in (task.batch(16, gen()), task.held_out("val", 32), task.held_out("test", 64)):
        assert isinstance(b, Batch)
        assert b.x.dtype == torch.float32 and b.x.shape[1:] == (length, n_in)
        assert b.y.dtype == y_dtype and b.y.shape == (b.x.shape[0], *y_shape)
    assert task.batch(16, gen()).x.shape[0] == 16
    # the loss and the scores accept a whole output sequence
    out = torch.zeros(16, length, n_out)
    b = task.batch(16, gen())
    scores = task.evaluate(out, b.y)
    assert math.isfinite(scores["loss"]) and task.loss(out, b.y).shape == ()
    assert (scores["accuracy"] is None) == (not classification)
    assert task.solved(scores) in (True, False)


@pytest.mark.parametrize("name", ALL)
def test_held_out_deterministic_and_cached(name):
    a, b, other = make_task(cfg(name), 0), make_task(cfg(name), 0), make_task(cfg(name), 1)
    ta, tb, to = a.held_out("test", 64), b.held_out("test", 64), other.held_out("test", 64)
    assert torch.equal(ta.x, tb.x) and torch.equal(ta.y, tb.y)
    assert not torch.equal(ta.x, to.x)
    assert a.held_out("test", 64) is ta
    assert not torch.equal(a.held_out("val", 32).x[:8], ta.x[:8])


@pytest.mark.parametrize("name", ALL)
def test_batch_deterministic_given_generator(name):
    task = make_task(cfg(name), 0)
    b1, b2, b3 = task.batch(32, gen(7)), task.batch(32, gen(7)), task.batch(32, gen(8))
    assert torch.equal(b1.x, b2.x) and torch.equal(b1.y, b2.y)
    assert not torch.equal(b1.x, b3.x)


@pytest.mark.parametrize("name", ALL)
def test_bad_split_raises(name):
    with pytest.raises(ValueError):
        make_task(cfg(name), 0).held_out("train", 8)


def test_make_task_accepts_string_name_and_rejects_unknown():
    assert make_task(TaskConfig(name="adding"), 0).name == "adding"
    with pytest.raises(ValueError):
        make_task(TaskConfig(name="nope"), 0)


# --- adding ---------------------------------------------------------------------------------------

def test_adding_definition():
    task = make_task(cfg("adding"), 0)
    b = task.batch(512, gen())
    values, mask = b.x[..., 0], b.x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert ((mask == 0) | (mask == 1)).all() and (mask.sum(1) == 2).all()
    assert (mask[:, :T // 2].sum(1) == 1).all() and (mask[:, T // 2:].sum(1) == 1).all()
    assert torch.allclose(b.y, (values * mask).sum(1))


def test_adding_baseline_measured():
    task = make_task(cfg("adding"), 0)
    b = task.batch(20000, gen(3))
    measured = task.loss(torch.ones(20000, T, 1), b.y).item()
    assert abs(measured - 1 / 6) < 0.005
    assert task.baseline_loss == pytest.approx(1 / 6)
    assert task.pointwise(torch.ones(4, 1), torch.ones(4)).shape == (4,)


# --- copy memory ----------------------------------------------------------------------------------

def test_copy_memory_definition():
    task = make_task(cfg("copy_memory"), 0)
    b = task.batch(64, gen())
    tokens = b.x.argmax(-1)
    assert (b.x.sum(-1) == 1).all()
    symbols = tokens[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (tokens[:, 10:T + 9] == 0).all() and (tokens[:, T + 9] == 9).all() and (tokens[:, T + 10:] == 0).all()
    assert (b.y[:, :T + 10] == 0).all() and torch.equal(b.y[:, -10:], symbols)


def test_copy_memory_baseline_measured():
    task = make_task(cfg("copy_memory"), 0)
    b = task.batch(256, gen())
    logits = torch.zeros(256, T + 20, 9)
    logits[:, :T + 10, 0] = 50.0      # certain blank while nothing is to be recalled
    logits[:, T + 10:, 0] = -50.0     # uniform over the 8 symbols when recalling
    measured = task.loss(logits, b.y).item()
    assert math.isclose(measured, 10 * math.log(8) / (T + 20), rel_tol=1e-6)
    assert math.isclose(task.baseline_loss, 10 * math.log(8) / (T + 20), rel_tol=1e-12)


def test_copy_memory_accuracy_counts_recall_only():
    task = make_task(cfg("copy_memory"), 0)
    b = task.batch(64, gen())
    blanks = torch.zeros(64, T + 20, 9)
    blanks[..., 0] = 1.0              # right at T+10 of T+20 steps, wrong at every recalled symbol
    assert task.accuracy(blanks, b.y) == 0.0
    perfect = torch.nn.functional.one_hot(b.y, 9).float()
    assert task.accuracy(perfect, b.y) == 1.0 and task.solved(task.evaluate(perfect, b.y))


# --- temporal order -------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [10, 13, 50, 200])
def test_temporal_order_definition(length):
    task = make_task(cfg("temporal_order", seq_len=length), 0)
    b = task.batch(512, gen())
    tokens = b.x.argmax(-1)
    relevant = tokens <= 1                                      # A = 0, B = 1
    assert (relevant.sum(1) == 2).all()
    (lo1, hi1), (lo2, hi2) = intervals(length)
    assert (lo1, lo2) == (int(0.1 * length), int(0.5 * length)) and hi1 > lo1 and hi2 > lo2
    t1 = relevant.float().argmax(1)                             # first relevant position
    t2 = length - 1 - relevant.flip(1).float().argmax(1)        # last relevant position
    assert ((t1 >= lo1) & (t1 < hi1)).all() and ((t2 >= lo2) & (t2 < hi2)).all()
    rows = torch.arange(512)
    assert torch.equal(b.y, 2 * tokens[rows, t1] + tokens[rows, t2])
    assert set(b.y.tolist()) == {0, 1, 2, 3}


def test_temporal_order_constant_prediction_baseline():
    task = make_task(cfg("temporal_order"), 0)
    b = task.batch(8000, gen())
    out = torch.zeros(8000, T, 4)
    out[..., 2] = 1.0                                           # always "BA"
    assert abs(task.accuracy(out, b.y) - 0.25) < 0.02
    assert task.loss(torch.zeros(8000, T, 4), b.y).item() == pytest.approx(math.log(4))


# --- digits ---------------------------------------------------------------------------------------

def test_digits_permutation_keeps_pixels():
    plain, permuted = make_task(cfg("digits"), 0), make_task(cfg("digits", permute=True), 0)
    a, p = plain.held_out("test", 64), permuted.held_out("test", 64)
    assert a.x.shape[1] == 64 and torch.equal(a.y, p.y)
    assert not torch.equal(a.x, p.x)
    assert torch.equal(a.x.squeeze(-1).sort(1).values, p.x.squeeze(-1).sort(1).values)
    assert 0 <= a.x.min() and a.x.max() <= 1 and a.x.max() == 1


def test_digits_splits_disjoint_and_capped():
    task = make_task(cfg("digits", test_size=1000, val_size=1000), 0)
    idx = {k: set(v.tolist()) for k, v in task.indices.items()}
    assert (len(idx["test"]), len(idx["val"]), len(idx["train"])) == (300, 200, 1297)
    assert not (idx["train"] & idx["val"] or idx["train"] & idx["test"] or idx["val"] & idx["test"])
    assert len(task.held_out("test", 5).y) == 300
    small = make_task(cfg("digits"), 0)
    assert (len(small.held_out("val", 1).y), len(small.held_out("test", 1).y)) == (32, 64)
    assert set(small.batch(4000, gen()).y.tolist()) == set(range(10))


# --- Mackey-Glass ---------------------------------------------------------------------------------

def test_mackey_glass_series_range():
    raw = mackey_glass_series(20000, 17, 0)
    assert len(raw) == 20000 and 0.2 < raw.min() < 0.6 and 1.1 < raw.max() < 1.5
    assert raw.std() > 0.1                                      # not collapsed to a fixed point


def test_mackey_glass_targets_and_baseline():
    task = make_task(cfg("mackey_glass", horizon=3), 0)
    assert 0.5 < task.baseline_loss < 2
    b = task.batch(64, gen())
    x = b.x.squeeze(-1)
    assert torch.equal(b.y[:, :-3], x[:, 3:])                   # y is x shifted by the horizon
    # each window is contiguous in the training part of the z-scored series
    lo, hi = task.bounds["train"]
    train = task.series[lo:hi]
    start = int((train == x[0, 0]).nonzero()[0])
    assert torch.equal(train[start:start + T + 3][3:], b.y[0])
    scores = task.evaluate(torch.zeros(64, T, 1), b.y)
    assert scores["nrmse"] >= 0.99 and not task.solved(scores)
    assert task.solved(task.evaluate(b.y.unsqueeze(-1), b.y))


# --- dependency spans (workers/gradients/health.py judges the gradient over them) ----------------------------

@pytest.mark.parametrize("name,length,span", [
    ("adding", 100, 100),                 # the first marked value can be at step 1
    ("temporal_order", 100, 100),         # the whole sequence, as the task's literature counts it
    ("copy_memory", 100, 111),            # a symbol's step to its recall: T + n_copy + 1 (L = 120)
    ("digits", 64, 64),                   # the whole image
    ("mackey_glass", 300, 51),            # 3τ for τ = 17
])
def test_each_task_declares_its_span(name, length, span):
    task = make_task(TaskConfig(name=TaskName(name), seq_len=length, **SIZES), 0)
    assert task.span() == span and 1 <= task.span() <= task.length


def test_copy_memory_span_reaches_the_final_recalled_symbol():
    task = make_task(cfg("copy_memory", n_copy=4), 0)
    b = task.batch(8, gen())
    first = task.length - task.span()                           # 0-based step of h_{L−span+1}
    assert torch.equal(b.x[:, first].argmax(-1), b.y[:, -1])    # the symbol the final step recalls


def test_spans_are_capped_at_the_sequence_length():
    assert make_task(cfg("mackey_glass"), 0).span() == T        # 3τ = 51 > T = 50
    assert make_task(cfg("mackey_glass", tau=5), 0).span() == 15
