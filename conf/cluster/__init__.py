"""Hydra config group `cluster` (a package so it ships in the wheel)."""
