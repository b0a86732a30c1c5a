"""Hydra config group `study` (a package so it ships in the wheel)."""
