"""Subnormal floats flushed to zero while a trial runs on the CPU.

A vanishing gradient is, by definition, a stream of ever smaller numbers: back-propagating through a
default-init tanh RNN over 150 steps fills the backward pass with values below float32's normal range
(1.2e-38). x86 CPUs compute on such subnormal numbers through a microcode slow path, tens of times slower
than on normal ones, so the very trials this project studies ran several times slower than healthy ones
(bench/bench_subnormals.py: 300 Adam steps of a default-init tanh RNN on adding at T = 150, 33.5 s against
6.6 s flushed; an IRNN, whose gradient does not vanish, 6.3 s against 5.5 s).

With flushing on, a result below the normal range is 0 instead of a subnormal. Nothing the trial reports
changes in a way that can be seen: the gradient profile is walked in log space with renormalized adjoints
(workers/gradients/log_profile.py), so it never comes near the range; a gradient entry of 1e-39 moves no weight.
The setting is process-wide and PyTorch has no getter for it, so it is turned off again when the trial
ends (off is PyTorch's default): code that runs in the same process afterwards sees normal IEEE behaviour.
GPUs are not affected (their kernels flush in hardware or lose little on subnormals).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def subnormals_flushed() -> Iterator[bool]:
    """Flush subnormals to zero inside the block; yields whether this CPU supports it (SSE3 on x86)."""
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(False)
