"""The description of a trial's MLflow run (`mlflow.note.content`, markdown): what a researcher reads first
on the trial's page, in place of MLflow's "No description".

    **vanishing** over the last 1000 steps (span_ratio −819 decades) · decay rate −0.82 decades/step
    **λ1** of W_rec: 1.14 at initialization → 0.854 after 800 steps
    **final.test_loss** = 2.226 (baseline ratio 13.36) · completed after 800 steps
    [← all trials of study init_phase](#/experiments/3/runs?…)

Written with the run's closing tags (tracking/runs/run_end.py), so it costs no request of its own. Plain dicts
in, a string out; no MLflow import.
"""
from __future__ import annotations

from typing import Any, Optional

from workers.values import dotted, finite_number, fmt

SPAN_WORDS = "the whole sequence"


def _lambda1(probe: Optional[dict[str, Any]]) -> Optional[float]:
    values = (probe or {}).get("lambda1") or []
    return finite_number(values[-1]) if values else None     # the top layer, as the profile


def _decades(value: Any) -> str:
    number = finite_number(value)
    return "–" if number is None else f"{number:+.3g}"


def trial_note(summary: dict[str, Any], objective: str = "", study_link: str = "", study: str = "") -> str:
    """`objective`: the study's first objective (`final.test_loss`); `study_link`: the study's trials in the
    MLflow UI, relative to it (`#/experiments/<id>/runs?…`)."""
    probes = [p for p in summary.get("probes") or [] if isinstance(p, dict)]
    last = probes[-1] if probes else {}
    health = summary.get("health") or "no verdict"
    span = summary.get("health_span")
    length = dotted(summary.get("config"), "task.seq_len")
    over = (SPAN_WORDS + f" (T = {length})" if span is not None and span == length
            else f"the last {span} steps of T = {length}" if span is not None else "its probes")
    lines = [f"**{health}** over {over}: span ratio {_decades(last.get('span_ratio'))} decades, "
             f"decay rate {_decades(last.get('decay_rate'))} decades per step back "
             f"(probe at step {last.get('step', '–')})"]

    first = probes[0] if probes and probes[0].get("step") == 0 else None
    init = _lambda1(first)
    if init is None and dotted(summary.get("config"), "model.init") == "scaled":
        # only the scaled init sets λ1 to its gain; xavier's, he's, orthogonal's gain is no spectral radius
        init = finite_number(dotted(summary.get("config"), "model.init_gain"))
    end = _lambda1(last) if last is not first else None
    steps = summary.get("steps")
    if init is not None or end is not None:
        text = f"**λ1** of W_rec (top layer): {fmt(init, '–')} at initialization"
        if end is not None:
            text += f" → {fmt(end)} after {last.get('step', steps)} steps"     # at the last probe
        lines.append(text)

    final = summary.get("final") or {}
    if objective:
        value = final.get(objective.split(".", 1)[-1]) if objective.startswith("final.") else None
        text = f"**{objective}** = {fmt(value, '–')}"
    else:
        text = ""
    if finite_number(final.get("baseline_ratio")) is not None:
        text += (" · " if text else "") + f"baseline ratio {fmt(final['baseline_ratio'])}"
    status = summary.get("status", "?")
    done = (status if steps is None else f"{status} at initialization (no training step)" if steps == 0
            else f"{status} after {steps} training steps")
    text += (" · " if text else "") + done
    lines.append(text)
    if study_link:
        back = f"← all trials of study {study}" if study else "← the study's trials"
        lines.append(f"[{back}]({study_link})")
    return "  \n".join(lines) + "\n"
