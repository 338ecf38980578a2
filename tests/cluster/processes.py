"""The production processes of one host, started as the Procfile starts them: gunicorn
(its metrics hooks as `--config`) and `qcluster` (after `python -m
veoproject.metrics.multiprocess`), each in a session of its own so that a SIGKILL takes the
whole process group, as the kernel's OOM killer or a lost container would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

import httpx

from tests.e2e.fixtures import REPO_ROOT

BIN = Path(sys.executable).parent


class HostProcess(ABC):
    """One process group; `start()` again after `kill()` for a restart (same log, appended)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that starts this process (gunicorn, qcluster)."""

    def start(self) -> HostProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole group (master and workers): no hook, no cleanup runs."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):  # stragglers that lost their parent
            os.killpg(self.process.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Gunicorn(HostProcess):
    """The Procfile's `web` line, bound to loopback, with `workers` sync workers."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, port: int, workers: int):
        super().__init__(name, env, log_dir)
        self.port = port
        self.workers = workers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(BIN / "gunicorn"),
            "veoproject.wsgi",
            "--config",
            "python:veoproject.metrics.gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--timeout",
            "60",
            "--log-level",
            "info",
        ]

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def wait_ready(self, timeout: float = 60) -> None:
        """/healthz answers 200 and every worker is up (each imported the project)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                healthy = httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
                if healthy and len(self.worker_pids()) == self.workers:
                    return
            except httpx.HTTPError:
                pass
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)


class QCluster(HostProcess):
    """The Procfile's `worker` line."""

    def command(self) -> list[str]:
        return [
            "/bin/sh",
            "-c",
            f'"{sys.executable}" -m veoproject.metrics.multiprocess '
            f'&& exec "{sys.executable}" manage.py qcluster',
        ]

    def wait_ready(self, timeout: float = 60) -> None:
        workers = int(self.env.get("Q_WORKERS", "2"))
        deadline = time.monotonic() + timeout
        while self.log().count("ready for work") < workers * self.starts:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)
