"""Hydra config group `model` (a package so it ships in the wheel)."""
