"""The trial engine on CUDA (`train.device=cuda`): the fused cuDNN kernels for ordinary steps, the unrolled
pass for the probes, in training mode (cuDNN refuses an RNN backward in eval mode: "cudnn RNN backward can
only be called in training mode"), and the same gradient profile as on the CPU for the same seed.

Real trials, no mocks. The CUDA tests run where `torch.cuda.is_available()` (a GPU machine) and are skipped
elsewhere; the check that `train.device=cuda` without a CUDA device is a ConfigError runs everywhere else.

The CUDA tests need PyTorch and pytest alone (scripts/gpu-check runs them on a GPU machine where nothing else is
installed): their trials are built by testkit.plain_config, without Hydra; where Hydra is installed,
test_plain_configs_are_the_composed_ones checks that every override list here composes to the same TrialConfig.
"""
from __future__ import annotations

import math

import pytest
import torch

from testkit.plain_config import trial_config
from workers.config import ConfigError, Device, to_dict
from workers.device import pick_device
from workers.trial import run_trial

# gpu-check: CUDA tests
# (the line above: scripts/gpu-check runs this module on a GPU machine, with PyTorch and pytest alone)
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the CUDA path is tested on a GPU machine")
no_cuda = pytest.mark.skipif(CUDA, reason="a CUDA device is present: train.device=cuda is valid here")

# A tiny trial: T = 12, 8 units, 12 steps probed at 0, 5, 10 and 11 (the last).
TINY = ["task.seq_len=12", "model.hidden_size=8", "train.steps=12", "train.probe_every=5", "train.batch_size=16",
        "task.val_size=32", "task.test_size=64", "train.seed=3"]
TRAIN_MODE_ERROR = "can only be called in training mode"
CELLS = ["rnn", "lstm", "gru"]
VARIANTS = [["model.layers=2"], ["model.norm=layer"], ["train.tbptt=4"],
            ["train.clip.mode=norm", "train.clip.threshold=0.5"]]


def overrides(cell: str, device: str, *extra: str) -> list[str]:
    return TINY + [f"model.cell={cell}", f"train.device={device}", *extra]


def trial(cell: str, device: str, *extra: str) -> dict:
    cfg = trial_config(overrides(cell, device, *extra))
    try:
        return run_trial(cfg)
    except RuntimeError as exc:        # name the cuDNN eval-mode error if it is the one
        assert TRAIN_MODE_ERROR not in str(exc), f"{cell} on {device}: an RNN backward ran in eval mode: {exc}"
        raise


def close(a: float | None, b: float | None, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


@needs_cuda
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cell", CELLS)
def test_cuda_trial_runs_fused_and_probes_like_the_cpu(cell):
    gpu = trial(cell, "cuda")
    cpu = trial(cell, "cpu")
    assert gpu["device"].startswith("cuda"), gpu["device"]
    assert cpu["device"] == "cpu"
    assert gpu["status"] == "completed" and gpu["steps"] == 12
    assert [p["step"] for p in gpu["probes"]] == [p["step"] for p in cpu["probes"]] == [0, 5, 10, 11]
    assert gpu["health"] in {"healthy", "vanishing", "exploding"}
    # Step 0: the same initial weights (built on the CPU from the seed, then moved) and the same batch
    # (drawn on the CPU): the exact ∂L_T/∂h_t profile agrees within float32 round-off.
    g0, c0 = gpu["probes"][0], cpu["probes"][0]
    assert len(g0["grad_h_norms"]) == len(c0["grad_h_norms"]) == 1
    assert len(g0["grad_h_norms"][0]) == 12
    for g, c in zip(g0["grad_h_norms"][0], c0["grad_h_norms"][0]):
        assert close(g, c, 1e-3), (g0["grad_h_norms"], c0["grad_h_norms"])
    assert close(g0["vanishing_ratio"], c0["vanishing_ratio"], 1e-3) or \
        abs(g0["vanishing_ratio"] - c0["vanishing_ratio"]) < 1e-3
    assert close(g0["loss"], c0["loss"], 1e-3)
    assert close(g0["global_norm"], c0["global_norm"], 1e-3)
    for group, norm in c0["group_norms"].items():
        assert close(g0["group_norms"][group], norm, 1e-3), group
    # the whole run stays close too (cuDNN's kernels differ in round-off, so more loosely)
    assert close(gpu["final"]["test_loss"], cpu["final"]["test_loss"], 5e-2)


@needs_cuda
@pytest.mark.timeout(300)
@pytest.mark.parametrize("extra", VARIANTS)
def test_cuda_lstm_variants_train_without_the_eval_mode_error(extra):
    summary = trial("lstm", "cuda", *extra)
    assert summary["device"].startswith("cuda") and summary["status"] == "completed"
    assert all(math.isfinite(v) for p in summary["probes"] for layer in p["grad_h_norms"] for v in layer)


@needs_cuda
def test_auto_picks_cuda_when_present():
    assert pick_device(Device.auto).type == "cuda"
    assert pick_device(Device.cuda).type == "cuda"
    assert pick_device(Device.cpu).type == "cpu"


def test_plain_configs_are_the_composed_ones():
    """The CUDA tests' trials, built without Hydra, are the trials conf/ composes (skipped where Hydra is not
    installed: on the GPU machine of scripts/gpu-check)."""
    pytest.importorskip("hydra", reason="Hydra not installed (a GPU check's machine): nothing to compare with")
    from study.config.compose import compose_trial

    lists = [overrides(cell, device) for cell in CELLS for device in ("cpu", "cuda")]
    lists += [overrides("lstm", "cuda", *extra) for extra in VARIANTS]
    for items in lists:
        assert to_dict(trial_config(items)) == to_dict(compose_trial(items)), items


@no_cuda
def test_train_device_cuda_without_cuda_is_a_config_error(home, capsys):
    pytest.importorskip("hydra", reason="Hydra not installed: the command's composition is not tested here")
    from study.config.compose import compose_trial

    with pytest.raises(ConfigError) as err:
        pick_device(Device.cuda)
    assert err.value.key == "train.device" and "train.device" in str(err.value)
    assert pick_device(Device.auto).type == "cpu"

    cfg = compose_trial(TINY + ["model.cell=lstm", "train.device=cuda"])
    with pytest.raises(ConfigError) as err:
        run_trial(cfg)
    assert err.value.key == "train.device"

    # the command: one line on stderr naming the key, exit 2, nothing written
    from study import cli
    from study.cli.exit_codes import Exit

    capsys.readouterr()
    assert cli.main(["trial", *TINY, "train.device=cuda"]) == Exit.CONFIG
    out, err_text = capsys.readouterr()
    lines = err_text.strip().splitlines()
    assert len(lines) == 1 and "train.device" in lines[0] and "cuda" in lines[0], err_text
    assert not (home / "trials").exists() or not any((home / "trials").iterdir())
