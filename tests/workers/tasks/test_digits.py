"""workers/tasks/digits.py: sequential digits from scikit-learn's bundled 8×8 images (no download): 1797 images
as 64 pixels in [0, 1], row-major or in one fixed permutation per seed; seeded splits (test ≤ 300, val ≤ 200,
the rest for training) that do not depend on the permutation; cross-entropy at the last pixel, baseline ln 10
and accuracy 0.1, solved at accuracy ≥ 0.9."""
from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits

from workers.config import TaskConfig, TaskName
from workers.tasks.digits import Digits, digits_data


def task(seed: int = 0, permute: bool = False, test_size: int = 1000, val_size: int = 256) -> Digits:
    return Digits(TaskConfig(name=TaskName.digits, seq_len=64, permute=permute, test_size=test_size,
                             val_size=val_size), seed)


def test_the_bundled_data():
    pixels, labels = digits_data()
    data = load_digits()
    assert pixels.shape == (1797, 64) and pixels.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.long and set(labels.tolist()) == set(range(10))
    assert pixels.min() == 0 and pixels.max() == 1
    assert torch.allclose(pixels * 16, torch.tensor(data.data, dtype=torch.float32))
    assert labels.tolist() == data.target.tolist()


def test_attributes_and_seq_len():
    t = task()
    assert (t.name, t.length, t.input_size, t.output_size) == ("digits", 64, 1, 10)
    assert (t.classification, t.per_step, t.span()) == (True, False, 64)
    assert t.baseline_loss == pytest.approx(math.log(10)) and t.baseline_accuracy == 0.1
    with pytest.raises(ValueError, match="must be 64"):
        Digits(TaskConfig(name=TaskName.digits, seq_len=50), 0)


def test_sequences_are_the_images_row_major():
    t = task()
    pixels, labels = digits_data()
    test = t.held_out("test", 1)
    idx = t.indices["test"]
    assert test.x.shape == (300, 64, 1) and torch.equal(test.x[..., 0], pixels[idx])
    assert torch.equal(test.y, labels[idx])


def test_splits_are_seeded_disjoint_and_capped():
    t = task()
    sizes = {k: len(v) for k, v in t.indices.items()}
    assert sizes == {"train": 1297, "val": 200, "test": 300}
    assert sorted(torch.cat(list(t.indices.values())).tolist()) == list(range(1797))
    small = task(test_size=40, val_size=10)
    assert (len(small.held_out("test", 999).y), len(small.held_out("val", 1).y)) == (40, 10)
    assert len(small.indices["train"]) == 1747
    assert torch.equal(task().indices["test"], t.indices["test"])
    assert not torch.equal(task(seed=1).indices["test"], t.indices["test"])
    with pytest.raises(ValueError):
        t.held_out("train", 10)


def test_permutation_is_fixed_per_seed_and_keeps_the_split():
    plain, permuted = task(), task(permute=True)
    for split in ("train", "val", "test"):
        assert torch.equal(plain.indices[split], permuted.indices[split])
    a, p = plain.held_out("test", 0).x[..., 0], permuted.held_out("test", 0).x[..., 0]
    assert not torch.equal(a, p)
    # one permutation of the 64 pixels for every image: the pixel columns over all images are the same
    # columns reordered (some, e.g. the always-blank corners, are equal, so compare them as multisets)
    assert sorted(map(tuple, a.T.tolist())) == sorted(map(tuple, p.T.tolist()))
    assert torch.equal(task(permute=True).held_out("test", 0).x, permuted.held_out("test", 0).x)


def test_batches_come_from_the_training_split():
    t = task()
    b = t.batch(512, torch.Generator().manual_seed(4))
    pixels, labels = digits_data()
    train = {tuple(row) for row in pixels[t.indices["train"]].tolist()}
    assert b.x.shape == (512, 64, 1) and b.y.shape == (512,)
    assert all(tuple(row) in train for row in b.x[..., 0].tolist())
    again = t.batch(512, torch.Generator().manual_seed(4))
    assert torch.equal(again.x, b.x) and torch.equal(again.y, b.y)


def test_uniform_prediction_scores_the_baseline_and_the_solved_rule():
    t = task()
    test = t.held_out("test", 0)
    n = len(test.y)
    scores = t.evaluate(torch.zeros(n, 64, 10), test.y)
    assert scores["loss"] == pytest.approx(math.log(10))
    right = torch.nn.functional.one_hot(test.y, 10).float().unsqueeze(1).expand(n, 64, 10)
    assert t.evaluate(right, test.y)["accuracy"] == 1.0 and t.solved(t.evaluate(right, test.y))
    assert t.solved({"accuracy": 0.9}) and not t.solved({"accuracy": 0.899}) and not t.solved({"accuracy": None})
