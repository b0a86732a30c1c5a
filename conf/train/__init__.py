"""Hydra config group `train` (a package so it ships in the wheel)."""
