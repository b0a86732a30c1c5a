"""The AR(k) baseline of a Mackey-Glass trial (workers/forecast/ar_baseline.py) and an ESN's chosen λ reach the
trial's summary, its MLflow run (`final/ar_nrmse`, `final/ar_free_run_nrmse`, `final/ar_order`,
`final/ridge`) and the study report (beside the model's figures). A real small ESN trial, a real local
MLflow store, no mocks."""
from __future__ import annotations

import re

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from study.report.page import write_study_report
from workers.config import TrialConfig, from_dict, to_dict
from workers.trial import run_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEED = CategoricalDistribution((0, 1))


@pytest.fixture(scope="module")
def summary() -> dict:
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="mackey_glass", seq_len=60, free_run=20, free_run_teacher=200, ar_order=10,
                       test_size=50, val_size=30)
    cfg["model"].update(cell="esn", hidden_size=30, leak=1.0, washout=30, fit_run=1000, ridge_grid=[1e-8, 1e-4])
    cfg["train"].update(device="cpu", batch_size=8)
    return run_trial(from_dict(cfg))


def test_the_summary_holds_the_baseline_and_the_chosen_ridge(summary):
    final = summary["final"]
    assert final["ar_order"] == 10 and 0 < final["ar_nrmse"] < 0.05
    assert final["ar_nrmse"] < final["ar_free_run_nrmse"]
    assert final["ridge"] in (1e-8, 1e-4) and final["ridge_val"] > 0


def test_the_baseline_reaches_mlflow(summary, tmp_path):
    from mlflow import MlflowClient

    from tracking.runs.connection import resolve_uri
    from tracking.runs.trial_recorder import TrialRecorder

    uri = resolve_uri("", tmp_path)
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("ar")).info.run_id
    reporter = TrialRecorder(uri, run_id)
    reporter.on_end(summary)
    metrics = client.get_run(run_id).data.metrics
    for key in ("ar_nrmse", "ar_free_run_nrmse", "ar_order", "ridge", "nrmse", "free_run_nrmse"):
        assert metrics[f"final/{key}"] == pytest.approx(summary["final"][key]), key


def test_the_report_shows_the_baseline_beside_the_model(summary, tmp_path):
    study = optuna.create_study(study_name="ar", direction="minimize")
    for seed in (0, 1):
        final = dict(summary["final"], nrmse=summary["final"]["ar_nrmse"] * (0.5 + 2 * seed))   # trial 1: worse than AR
        study.add_trial(create_trial(
            params={"train.seed": seed}, distributions={"train.seed": SEED}, value=final["nrmse"],
            user_attrs={"gradstudy.health": summary["health"], "gradstudy.cell": "esn",
                        "gradstudy.final": final, "gradstudy.status": summary["status"]}))
    page = write_study_report(study, tmp_path).read_text(encoding="utf-8")
    section = page.split("Against a linear baseline")[1].split("<h2>")[0]
    rows = re.findall(r'<tr data-trial="(\d+)">(.*?)</tr>', section, re.S)
    assert [n for n, _ in rows] == ["0", "1"]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", body) for _, body in rows]
    assert cells[0][1] == "esn" and cells[0][6] == "10"
    assert cells[0][-1] == "beats AR" and cells[1][-1] == "not better than AR"
    assert "ridge λ" in section


def test_no_baseline_no_section(tmp_path):
    study = optuna.create_study(study_name="plain", direction="minimize")
    study.add_trial(create_trial(params={"train.seed": 0}, distributions={"train.seed": SEED}, value=0.1,
                                 user_attrs={"gradstudy.cell": "rnn", "gradstudy.final": {"test_loss": 0.1}}))
    assert "Against a linear baseline" not in write_study_report(study, tmp_path).read_text(encoding="utf-8")
