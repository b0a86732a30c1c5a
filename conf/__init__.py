"""Hydra config tree of gradstudy, shipped as a package so `pkg://conf` works when installed."""
