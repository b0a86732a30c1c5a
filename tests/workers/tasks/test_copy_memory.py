"""workers/tasks/copy_memory.py: the copy-memory task. n symbols from 1..K, T − 1 blanks, the delimiter K + 1,
n blanks (L = T + 2n, one-hot), target T + n blanks then the n symbols; cross-entropy over every step. The
memoryless predictor scores n·ln K / L; accuracy is the recall of the last n steps; the span reaches from
the last recalled symbol back to its input step, T + n + 1."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workers.config import TaskConfig, TaskName
from workers.tasks.copy_memory import CopyMemory

T, K, N = 12, 4, 3          # L = 18, inputs K + 2 = 6, classes K + 1 = 5
L = T + 2 * N


def task(seq_len: int = T, n_symbols: int = K, n_copy: int = N, seed: int = 0) -> CopyMemory:
    cfg = TaskConfig(name=TaskName.copy_memory, seq_len=seq_len, n_symbols=n_symbols, n_copy=n_copy,
                     val_size=16, test_size=16)
    return CopyMemory(cfg, seed)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_attributes():
    t = task()
    assert (t.name, t.length, t.input_size, t.output_size) == ("copy_memory", L, K + 2, K + 1)
    assert (t.classification, t.per_step) == (True, True)
    assert t.baseline_accuracy == 1 / K and t.span() == T + N + 1


def test_the_defaults_of_the_literature():
    t = task(seq_len=100, n_symbols=8, n_copy=10)
    assert (t.length, t.input_size, t.output_size, t.span()) == (120, 10, 9, 111)
    assert t.baseline_loss == pytest.approx(10 * math.log(8) / 120)


def test_sequence_layout():
    b = task().batch(256, gen())
    assert b.x.shape == (256, L, K + 2) and b.x.dtype == torch.float32
    assert b.y.shape == (256, L) and b.y.dtype == torch.long
    assert (b.x.sum(-1) == 1).all()                       # one-hot
    tokens = b.x.argmax(-1)
    symbols = tokens[:, :N]
    assert ((symbols >= 1) & (symbols <= K)).all() and set(symbols.flatten().tolist()) == set(range(1, K + 1))
    assert (tokens[:, N:T + N - 1] == 0).all()            # T − 1 blanks
    assert (tokens[:, T + N - 1] == K + 1).all()          # the delimiter
    assert (tokens[:, T + N:] == 0).all()                 # n blanks while recalling
    assert (b.y[:, :T + N] == 0).all() and torch.equal(b.y[:, T + N:], symbols)


def test_memoryless_predictor_scores_the_baseline():
    """Blank for sure for T + n steps, uniform over the K symbols for the last n: n·ln K / L."""
    t = task()
    b = t.batch(64, gen(1))
    logits = torch.full((64, L, K + 1), -60.0)
    logits[:, :T + N, 0] = 60.0
    logits[:, T + N:, 1:] = 0.0
    assert t.loss(logits, b.y).item() == pytest.approx(N * math.log(K) / L, rel=1e-5)
    assert t.baseline_loss == pytest.approx(N * math.log(K) / L, rel=1e-12)


def test_accuracy_is_the_recall_of_the_last_n_steps():
    t = task()
    b = t.batch(64, gen(2))
    perfect = F.one_hot(b.y, K + 1).float()
    assert t.accuracy(perfect, b.y) == 1.0 and t.solved(t.evaluate(perfect, b.y))
    wrong_before = perfect.clone()
    wrong_before[:, :T + N] = F.one_hot(torch.ones(64, T + N, dtype=torch.long), K + 1).float()
    assert t.accuracy(wrong_before, b.y) == 1.0         # the blanks are not counted
    blanks = F.one_hot(torch.zeros(64, L, dtype=torch.long), K + 1).float()
    assert t.accuracy(blanks, b.y) == 0.0 and not t.solved(t.evaluate(blanks, b.y))
    guess = F.one_hot(torch.ones(64, L, dtype=torch.long), K + 1).float()          # always symbol 1
    expected = (b.y[:, -N:] == 1).float().mean().item()
    assert t.accuracy(guess, b.y) == pytest.approx(expected) and 0.1 < expected < 0.4     # ≈ 1/K


def test_solved_rule():
    t = task()
    assert t.solved({"loss": 9.0, "accuracy": 0.99}) and not t.solved({"loss": 0.0, "accuracy": 0.989})
    assert not t.solved({"loss": 0.0, "accuracy": None})


def test_the_span_starts_at_the_symbol_the_last_step_recalls():
    t = task()
    b = t.batch(32, gen(3))
    first = t.length - t.span()                           # 0-based step where the span starts
    assert first == N - 1 and torch.equal(b.x[:, first].argmax(-1), b.y[:, -1])
