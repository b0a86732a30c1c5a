"""Hydra config group `tracking` (a package so it ships in the wheel)."""
