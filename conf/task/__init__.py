"""Hydra config group `task` (a package so it ships in the wheel)."""
