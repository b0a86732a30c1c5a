"""How a trial's MLflow run presents itself in the runs table: a name that says what the trial is, and a
colour that says its health.

Name: the trial number (3 digits), the cell, the activation where the cell reads it, the recurrent
initialization with its λ1 (`007 rnn tanh λ1=0.5`, `012 lstm orthogonal λ1=1`), an ESN's spectral radius,
then every other sampled key as `short=value` (`T=100`, `lr=0.003`), cut at MAX_NAME characters.
Colour (`mlflow.runColor`): the health verdict's colour of the report's figures (tracking/colours.py
`health_colour`).
"""
from __future__ import annotations

from typing import Any, Iterable

from tracking.values import dotted
from workers.key_use import applies, lambda1

MAX_NAME = 80
COLOUR_TAG = "mlflow.runColor"

# short names of sampled keys in a run name (others: the key's last part)
SHORT = {"task.seq_len": "T", "task.name": "task", "model.hidden_size": "H", "model.layers": "layers",
         "train.clip.mode": "clip", "train.clip.threshold": "clip≤", "train.penalty.l2": "l2",
         "train.penalty.omega": "Ω", "model.spectral_radius": "ρ", "train.batch_size": "B"}
# keys the head of the name already shows
SHOWN = {"model.cell", "model.activation", "model.init", "model.init_gain", "model.spectral_radius"}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_name(number: int, config: dict[str, Any], sampled: Iterable[str] = ()) -> str:
    model = config.get("model") or {}
    cell = str(model.get("cell", "?"))
    parts = [f"{number:03d}", cell]
    if applies("model.activation", config) and model.get("activation"):
        parts.append(str(model["activation"]))
    if applies("model.init", config) and model.get("init") not in (None, "default", "scaled"):
        parts.append(str(model["init"]))
    gain = lambda1(config)
    if gain is not None:
        parts.append(f"λ1={gain:g}")
    if cell == "esn" and model.get("spectral_radius") is not None:
        parts.append(f"ρ={_value(model['spectral_radius'])}")
    for key in sampled:
        if key in SHOWN or not applies(key, config):
            continue
        parts.append(f"{SHORT.get(key, key.rsplit('.', 1)[-1])}={_value(dotted(config, key))}")
    name = " ".join(parts)
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "…"
