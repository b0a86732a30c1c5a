"""The `summary.json` of a trial (the contract in docs/summary-json.md) and its safe writing."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional


def json_safe(value: Any) -> Any:
    """NaN and ±Inf become null (JSON has no such numbers); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def dumps(value: Any, depth: int = 0) -> str:
    """JSON with one key per line, but every list of plain values on one line: a long-horizon profile
    (T = 5000 numbers per layer and probe) stays one line instead of T."""
    pad = " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {dumps(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + dumps(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * depth + "]"
    return json.dumps(value, separators=(",", ":") if isinstance(value, list) else None)


def write_summary(summary: dict[str, Any], path: Path) -> Path:
    write_atomic(path, dumps(json_safe(summary)))
    return path


def write_trial_folder(folder: Path, summary: dict[str, Any],
                       history: Optional[list] = None) -> Path:
    """The one writer of a trial's folder: summary.json, config.yaml (the resolved config the trial ran)
    and, when given, history.json (the metrics sent to MLflow, for a back-fill); each file atomically.
    Returns the summary's path."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)     # libyaml's where PyYAML has it: same text, ~4× faster
    write_atomic(folder / "config.yaml", yaml.dump(summary["config"], Dumper=dumper, sort_keys=False))
    if history is not None:
        write_atomic(folder / "history.json", json.dumps(history))
    return write_summary(summary, folder / "summary.json")
