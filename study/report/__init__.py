"""The report of one study, read from its Optuna study: `report.html` with its figures, and the study's note.

    page.py          writes the report folder: figures + report.html (templates/report.html.j2)
    data.py          what the report reads from the study: objectives, config values, importances, phase records
    figures.py       the whole-study figures: health mix, history, importances, parameters
    phase_figure.py  the phase diagram: loss, vanishing ratio and decay rate against lambda1 of W_rec
    length_mix.py    studies mixing sequence lengths: ranking and colours by the decay rate
    study_note.py    the study's summary where MLflow shows it first (the parent run's description)

The figures load matplotlib: import page.py and the figure modules directly.
"""
from study.report.study_note import best_metrics, ranked_best, study_note

__all__ = ["best_metrics", "ranked_best", "study_note"]
