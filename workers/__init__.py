"""The trial engine: pure PyTorch (no Ray, Optuna or MLflow), runnable and testable alone.

`workers.trial.run_trial(cfg, reporter)` trains one configuration with gradient probes and returns its
summary; `workers.config` defines every `task.*`, `model.*` and `train.*` key.
"""
