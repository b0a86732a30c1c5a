"""Import hygiene: a trial with tracking off and `gradstudy --help` load neither MLflow nor matplotlib,
the driver never loads PyTorch, and importing the packages changes no environment variable, logging level
or plotting backend."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "matplotlib", "matplotlib.pyplot")


def run_python(code: str, tmp_path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "GRADSTUDY_HOME": str(tmp_path),
                                           "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_trial_with_tracking_off_imports_neither_mlflow_nor_matplotlib(tmp_path):
    """The worker's entry point, on a real journal storage, as a Ray worker runs it."""
    seen = run_python(f"""
        import json, sys
        import optuna
        from study.storage.backend import open_storage
        from study.driver.trial_calls import trial_id
        from study.cluster.trial_task import TrialJob, execute
        from workers.config import TrialConfig, TaskConfig
        url = {str(tmp_path / "journal.log")!r}
        study = optuna.create_study(study_name="s", storage=open_storage(url))
        trial = study.ask()
        cfg = TrialConfig(task=TaskConfig(seq_len=10))
        cfg.train.steps, cfg.train.probe_every = 3, 2
        result = execute(TrialJob(url, "s", trial_id(trial), trial.number, cfg, "final.test_loss", False))
        print(json.dumps({{"probes": len(result["summary"]["probes"]),
                          "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """, tmp_path)
    assert seen == {"probes": 2, "loaded": []}      # steps 0 and 2 (the last)


def test_gradstudy_help_imports_neither(tmp_path):
    seen = run_python(f"""
        import json, sys
        from study.cli.main import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print(json.dumps([m for m in {HEAVY!r} + ("ray", "torch") if m in sys.modules]))
    """, tmp_path)
    assert seen == []


def test_imports_change_no_global_state(tmp_path):
    """Importing every module of the three packages (after the libraries they use) leaves os.environ,
    Optuna's and the root logger's levels and matplotlib's backend as they were."""
    seen = run_python("""
        import importlib, json, logging, os, pkgutil
        import matplotlib, mlflow, optuna, ray, torch   # their own import-time effects are theirs
        before = (dict(os.environ), optuna.logging.get_verbosity(), logging.getLogger().level,
                  matplotlib.get_backend())
        for package in ("workers", "tracking", "study"):
            for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
                importlib.import_module(info.name)
        after = (dict(os.environ), optuna.logging.get_verbosity(), logging.getLogger().level,
                 matplotlib.get_backend())
        changed = [name for name, a, b in zip(["environ", "optuna", "logging", "backend"], before, after) if a != b]
        print(json.dumps(changed))
    """, tmp_path)
    assert seen == []


def test_the_driver_with_tracking_off_imports_no_mlflow(tmp_path):
    """MLflow tracking attaches as a driver hook only when tracking.enabled: the runner, the nightly hook
    and the report's readers do not load it."""
    seen = run_python("""
        import json, sys
        import study.driver.runner, study.cli.nightly, study.driver.hooks, study.report.data
        print(json.dumps([m for m in ("mlflow",) if m in sys.modules]))
    """, tmp_path)
    assert seen == []


def test_the_driver_imports_no_torch(tmp_path):
    """The driver composes configs, asks Optuna and places trials on Ray: PyTorch is loaded on the Ray
    workers only (study/cluster/trial_task.py imports it in `execute`), so every `gradstudy run` starts about a
    second of CPU sooner. The remote task's module, which Ray's workers import, is among these."""
    seen = run_python("""
        import json, sys
        import study.cli.main, study.driver.runner, study.cluster.placement, study.cluster.trial_task
        import study.cli.nightly, study.driver.hooks
        # tracking on
        import study.recording.hook, tracking.runs.study_runs, tracking.runs.trial_recorder, study.report.page
        print(json.dumps([m for m in ("torch",) if m in sys.modules]))
    """, tmp_path)
    assert seen == []
