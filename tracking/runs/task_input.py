"""A trial's task as its MLflow run's input dataset, so that the runs table's Dataset column says what the
trial was trained on ("adding T=100 (train)") instead of "-".

The data is generated (workers/tasks/), not read from a file: the dataset's source is the task section of
the config (type "code"), its digest a hash of that section, so trials on the same task share a dataset.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

CONTEXT_TAG = "mlflow.data.context"


def task_label(config: dict[str, Any]) -> str:
    task = config.get("task") or {}
    name = str(task.get("name", "?"))
    parts = [name, f"T={task.get('seq_len')}"]
    if name == "copy_memory":
        parts.append(f"K={task.get('n_copy')} symbols={task.get('n_symbols')}")
    elif name == "mackey_glass":
        parts.append(f"τ={task.get('tau')} horizon={task.get('horizon')}")
    elif name == "digits" and task.get("permute"):
        parts.append("permuted")
    return " ".join(parts)


def task_dataset(config: dict[str, Any]):
    from mlflow.entities import Dataset, DatasetInput, InputTag

    task = config.get("task") or {}
    source = json.dumps({"generator": "gradstudy workers.tasks", "task": task}, sort_keys=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    dataset = Dataset(name=task_label(config), digest=digest, source_type="code", source=source)
    return DatasetInput(dataset=dataset, tags=[InputTag(key=CONTEXT_TAG, value="train")])


def log_task_input(client, run_id: str, config: dict[str, Any], attempts: int = 3) -> bool:
    """Whether the input was logged. Trials of one task log the same dataset: two first logs at once can
    collide on the server's (experiment, name, digest) key, and the retry finds the dataset then. A
    failure here is cosmetic (the Dataset column), never a reason to hold the trial's record back."""
    for attempt in range(attempts):
        try:
            client.log_inputs(run_id, datasets=[task_dataset(config)])
            return True
        except Exception:
            time.sleep(0.2 * (attempt + 1))
    return False
