"""A new TCP connection for every request to an MLflow server: the way around uvicorn's lost TCP_NODELAY.

`mlflow server` runs uvicorn with 4 worker processes by default. On Linux, uvicorn started with `--workers N`
(N > 1; gunicorn with uvicorn workers too) accepts connections with Nagle's algorithm left on
(Kludex/uvicorn#3149, open in uvicorn 0.54): on a connection kept alive, each response's body waits for the
client's delayed ACK of its headers, ~40 ms a request. MLflow's client keeps its connections alive, so every
call it makes pays that: measured against `mlflow server --workers 2` on this machine, `runs/create` 57 ms,
`runs/log-batch` 57 ms, `runs/update` 113 ms, `/health` 45 ms; with a fresh connection each (the first
exchange of a connection is acknowledged at once) 20, 14, 21 and 2 ms; a single-worker server is fast either way
(`bench/bench_cluster_trial_cost.py`, docs/mlflow.md#requests-per-trial).

`tracking.keep_alive=false` (the default) adds `Connection: close` to every request this process sends to an
MLflow server, through MLflow's request-header providers; `true` leaves MLflow's kept-alive connections (for a
server across a slow link, where a new TCP and TLS handshake each request costs more than the stall, or one
that runs a single worker).
"""
from __future__ import annotations

_state = {"close": False, "registered": False}


class ConnectionClose:
    """An MLflow RequestHeaderProvider (mlflow.tracking.request_header), on while `close_connections(True)`."""

    def in_context(self) -> bool:
        return _state["close"]

    def request_headers(self) -> dict[str, str]:
        return {"Connection": "close"}


def close_connections(on: bool) -> None:
    """From now on, this process's MLflow requests close their connection (`on`) or keep it alive."""
    _state["close"] = bool(on)
    if on and not _state["registered"]:
        from mlflow.tracking.request_header.registry import _request_header_provider_registry

        _request_header_provider_registry.register(ConnectionClose)
        _state["registered"] = True
