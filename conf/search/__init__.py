"""Hydra config group `search` (a package so it ships in the wheel)."""
