"""The long-memory tasks; `make_task(cfg, seed)` builds the one that `cfg.name` names."""
from __future__ import annotations

from ..config import TaskConfig, TaskName
from .adding import Adding
from .base import Batch, Task
from .copy_memory import CopyMemory
from .digits import Digits
from .mackey_glass import MackeyGlass
from .temporal_order import TemporalOrder

TASKS = {
    TaskName.adding: Adding,
    TaskName.copy_memory: CopyMemory,
    TaskName.temporal_order: TemporalOrder,
    TaskName.digits: Digits,
    TaskName.mackey_glass: MackeyGlass,
}


def make_task(cfg: TaskConfig, seed: int) -> Task:
    """The task named by `cfg.name` (validated by `workers.config`), deterministic from `seed`."""
    return TASKS[TaskName(cfg.name)](cfg, seed)


__all__ = ["Task", "Batch", "make_task", "TASKS",
           "Adding", "CopyMemory", "TemporalOrder", "Digits", "MackeyGlass"]
