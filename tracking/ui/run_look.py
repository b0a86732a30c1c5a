"""How a trial's MLflow run presents itself in the runs table: a name that says what the trial is, and a
colour that says its health.

Name: the trial number (3 digits), the cell, the activation where the cell reads it, the recurrent
initialization with its λ1 at initialization, `λ1₀` (`007 rnn tanh λ1₀=0.5`, `012 lstm orthogonal λ1₀=1`:
training moves λ1, whose value after training is the metric `weights/lambda1/<layer>`), an ESN's spectral
radius, then every other sampled key as `short=value` (`T=100`, `lr=0.003`), numbers to 3 significant
digits (the params and config.yaml keep them whole), cut at MAX_NAME characters.
Colour (`mlflow.runColor`): the health verdict's colour of the report's figures (tracking/figures/colours.py
`health_colour`), except in a study that samples T (`task.seq_len`) from a few choices: there each run is
coloured by its T (`length_colour`), since T sets where a profile ends and how far its verdict reaches
(init_phase: 116 of 120 trials vanishing made 116 lines of one blue); the health stays the table's
`gradstudy.health` column. The colours come with an emoji square of about their hue, so that a markdown
description can carry their legend (LEGEND).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from workers.key_use import applies, lambda1
from workers.values import dotted

MAX_NAME = 80
COLOUR_TAG = "mlflow.runColor"

# short names of sampled keys in a run name (others: the key's last part)
SHORT = {"task.seq_len": "T", "task.name": "task", "model.hidden_size": "H", "model.layers": "layers",
         "train.clip.mode": "clip", "train.clip.threshold": "clip≤", "train.penalty.l2": "l2",
         "train.penalty.omega": "Ω", "model.spectral_radius": "ρ", "train.batch_size": "B"}
# keys the head of the name already shows
SHOWN = {"model.cell", "model.activation", "model.init", "model.init_gain", "model.spectral_radius"}


# T's colours, shortest first, with the emoji square of each hue (not the health colours')
LENGTH_COLOURS = [("#9467bd", "🟪"), ("#8c564b", "🟫"), ("#bcbd22", "🟨"), ("#222222", "⬛")]


def colours_by_length(choices: Optional[Sequence[Any]]) -> bool:
    """Runs are coloured by T: T is sampled from at most len(LENGTH_COLOURS) choices."""
    return bool(choices) and len(choices) <= len(LENGTH_COLOURS)


def length_colour(choices: Optional[Sequence[Any]], length: Any) -> Optional[str]:
    """The run colour of a trial of length `length` when the study colours by T (`colours_by_length`),
    else None (the health colour applies)."""
    if not colours_by_length(choices) or length not in choices:
        return None
    return LENGTH_COLOURS[sorted(choices).index(length)][0]


def sampled_lengths(trials: Iterable[Any]) -> Optional[list[Any]]:
    """The choices of `task.seq_len` where the trials (Optuna trials: `.distributions`) sample it from a
    categorical distribution, else None."""
    for t in trials:
        d = t.distributions.get("task.seq_len")
        if d is not None:
            return list(d.choices) if hasattr(d, "choices") else None
    return None


def length_legend(choices: Sequence[Any]) -> str:
    """`🟪 T=100 · 🟫 T=1000 · 🟨 T=5000`, the legend of `length_colour`."""
    return " · ".join(f"{LENGTH_COLOURS[i][1]} T={c}" for i, c in enumerate(sorted(choices)))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
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
        parts.append(f"λ1₀={gain:.3g}")
    if cell == "esn" and model.get("spectral_radius") is not None:
        parts.append(f"ρ={_value(model['spectral_radius'])}")
    for key in sampled:
        if key in SHOWN or not applies(key, config):
            continue
        parts.append(f"{SHORT.get(key, key.rsplit('.', 1)[-1])}={_value(dotted(config, key))}")
    name = " ".join(parts)
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "…"
