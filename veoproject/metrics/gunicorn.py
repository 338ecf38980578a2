"""gunicorn's hooks for multiprocess metrics, loaded with `--config
python:veoproject.metrics.gunicorn` (Procfile). Without PROMETHEUS_MULTIPROC_DIR both do
nothing. Other gunicorn settings stay on the command line."""

from __future__ import annotations

from typing import Any

from veoproject.metrics.multiprocess import directory, prepare_directory, process_died


def on_starting(server: Any) -> None:
    """In the master, before any worker: the directory made ready (emptied unless other
    processes of the host are running; see veoproject.metrics.multiprocess)."""
    path = directory()
    if path is not None:
        outcome = prepare_directory(path)
        server.log.info("event=metrics_multiproc_dir_ready path=%s outcome=%s", path, outcome)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended (crashed, killed by the timeout, or stopped): its live gauges go; its
    counters stay in the totals."""
    process_died(worker.pid)
