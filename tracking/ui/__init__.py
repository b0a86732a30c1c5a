"""How a study looks in the MLflow UI.

    run_look.py  a run's name (what the trial is) and colour (its health, or its T)
    view.py      the seeded view of a study's runs page: columns, sort, charts
    links.py     addresses in the MLflow UI: a study's trials, a run, the compare view
"""
from tracking.ui.links import run_path, run_url, trials_url, ui_address
from tracking.ui.run_look import run_name, sampled_lengths

__all__ = ["run_path", "run_url", "trials_url", "ui_address", "run_name", "sampled_lengths"]
