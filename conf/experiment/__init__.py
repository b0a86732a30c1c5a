"""Hydra config group `experiment` (a package so it ships in the wheel)."""
