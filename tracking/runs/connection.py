"""Where MLflow records go, and checking that they can go there.

- `tracking.uri` empty: a local SQLite store `<data dir>/mlflow/mlflow.db` with artifacts in
  `<data dir>/mlflow/artifacts`, absolute paths (never MLflow's default `./mlflow.db` or `./mlruns`
  relative to wherever the command happens to run).
- `tracking.uri` = `http(s)://host:port`: a shared `mlflow server`. Credentials come from the
  environment only (`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`, read by MLflow itself); a URI
  with a password in it is refused, so no secret sits in a config file or in the records.
MLflow itself is imported only by `connect()`: the rest is plain path and URL handling.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from tracking.runs.errors import TrackingError
from tracking.runs.urls import has_password, scrub

if TYPE_CHECKING:
    from mlflow import MlflowClient


def local_root(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "mlflow"


def local_store(data_dir: Path) -> Path:
    """The local store's SQLite file (`tracking.uri` empty)."""
    return local_root(data_dir) / "mlflow.db"


def resolve_uri(uri: str, data_dir: Path) -> str:
    if uri:
        if has_password(uri):
            raise TrackingError(uri, "a URI without credentials; set MLFLOW_TRACKING_USERNAME and "
                                     "MLFLOW_TRACKING_PASSWORD in the environment instead")
        return uri
    store = local_store(data_dir)
    store.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store}"


def artifact_location(uri: str, data_dir: Path, experiment: str) -> str | None:
    """Artifact folder for a new experiment: under the data dir for the local store, the server's
    choice (None) for a remote one."""
    if uri.startswith("sqlite:") or uri.startswith("file:"):
        return (local_root(data_dir) / "artifacts" / experiment).as_uri()
    return None


# A process that records to MLflow: a few quick retries rather than MLflow's default 7 with back-off
# (minutes per call while a server is down), and no "View run … at" line after a run is closed (MLflow's
# client fetches the whole run from a server to print it: a request per trial). Set by the recording
# objects when they are made (the driver's StudyTracking, a worker's TrialRecorder), never at import; an
# explicit setting wins.
RECORDING_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                  "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def use_recording_http() -> None:
    for key, value in RECORDING_HTTP.items():
        os.environ.setdefault(key, value)


@contextmanager
def quick_http() -> Iterator[None]:
    """Fail fast instead of MLflow's default 7 retries with back-off (minutes) for a check."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_answers(client: "MlflowClient") -> None:
    """One request, no retries: raises when the store does not answer now."""
    with quick_http():
        client.search_experiments(max_results=1)


def connect(uri: str, data_dir: Path, keep_alive: bool = False) -> "MlflowClient":
    """A client for the resolved store, checked to answer now; TrackingError otherwise. A server's requests from
    this process each open a connection of their own unless `keep_alive` (tracking/runs/fresh_connections.py)."""
    from mlflow import MlflowClient

    resolved = resolve_uri(uri, data_dir)
    if resolved.startswith(("http://", "https://")):
        from tracking.runs.fresh_connections import close_connections

        close_connections(not keep_alive)
    try:
        if not uri:
            # Create the local store's tables with an artifact root under the data dir: MLflow makes
            # its "Default" experiment with the tables and would point it at ./mlruns of the cwd.
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(resolved, (local_root(data_dir) / "artifacts").as_uri())
        client = MlflowClient(tracking_uri=resolved)
        check_answers(client)
    except Exception as exc:
        raise TrackingError(uri or resolved, f"a reachable MLflow tracking server or store ({why(exc)})") from None
    return client


ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def why(exc: BaseException, limit: int = 200) -> str:
    """The reason in a few words: the operating system's "[Errno 111] Connection refused" when urllib3's
    retry chain carries one, else the first line, cut at a word and marked "…" beyond `limit` characters;
    any password masked."""
    text = str(exc).strip()
    first = scrub(text.splitlines()[0]) if text else type(exc).__name__
    found = ERRNO.search(first)
    if found:
        return found.group(0).strip()
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + " …"
