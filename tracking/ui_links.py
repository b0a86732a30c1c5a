"""Addresses in the MLflow UI: where a study's trials open as a readable table.

`ui_address(uri)`: the MLflow UI that shows a store (a tracking server is its own UI; the local store is
shown by `gradstudy ui`, on 127.0.0.1:5000 unless told otherwise).
"""
from __future__ import annotations

LOCAL_UI = "http://127.0.0.1:5000"


def ui_address(uri: str, port: int | None = None) -> str:
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{port}" if port else LOCAL_UI
