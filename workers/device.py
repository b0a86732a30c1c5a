"""Where a trial runs (`train.device`): cuda when present and allowed, else the CPU."""
from __future__ import annotations

import torch

from workers.config import ConfigError, Device


def pick_device(choice: Device) -> torch.device:
    if choice == Device.cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == Device.cuda:
        raise ConfigError("train.device", "cuda", "auto or cpu (no CUDA device is visible here)")
    return torch.device("cpu")
