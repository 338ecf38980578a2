"""Drive a fake fal server running in another process (benchmarks, e2e with qcluster)."""

from __future__ import annotations

import json
import os
import selectors
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class ControlClient:
    """HTTP client for ``/_control/*`` of a fake (in this process or another)."""

    def __init__(self, base_url: str, ca_pem_path: str, timeout: float = 10.0) -> None:
        context = ssl.create_default_context(cafile=ca_pem_path)
        self._http = httpx.Client(
            base_url=base_url + "/_control", verify=context, timeout=timeout, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def configure(self, **values: Any) -> dict[str, Any]:
        return self._call("POST", "/config", json=values)

    def fail_next(self, target: str, fault: int | str, times: int = 1, **opts: Any) -> Any:
        body = {"target": target, "fault": fault, "times": times, **opts}
        return self._call("POST", "/fail_next", json=body)

    def reset(self, *, config: bool = True) -> None:
        self._call("POST", "/reset", json={"config": config})

    def requests(self, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if kind:
            params["kind"] = kind
        return self._call("GET", "/requests", params=params)

    def webhooks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/webhooks")

    def jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/jobs")

    def job(self, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{request_id}")

    def sign(self, body: bytes, request_id: str, timestamp: int | None = None) -> dict[str, str]:
        payload = {"body": body.decode(), "request_id": request_id, "timestamp": timestamp}
        return self._call("POST", "/sign", json=payload)

    def close_connections(self) -> None:
        self._call("POST", "/close_connections")


class FakeFalProcess:
    """``python -m tests.fakefal`` as a child process; extra CLI args go to the server.

    >>> with FakeFalProcess("--run-seconds", "10", "--max-concurrent", "1000") as fal:
    ...     env = {**os.environ, **fal.client_env}
    """

    def __init__(
        self,
        *args: str,
        port: int = 0,
        ca_out: str | None = None,
        state_file: str | None = None,
        python: str = sys.executable,
        startup_timeout: float = 20.0,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fakefal-proc-")
        self.ca_pem_path = ca_out or os.path.join(self._dir.name, "ca.pem")
        self.state_file = state_file or os.path.join(self._dir.name, "state.json")
        self._cmd = [
            python, "-m", "tests.fakefal", "--port", str(port),
            "--ca-out", self.ca_pem_path, "--state-file", self.state_file,
            "--watch-stdin", *args,
        ]  # fmt: skip
        self._startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.host = ""
        self._control: ControlClient | None = None

    def start(self) -> FakeFalProcess:
        self.proc = subprocess.Popen(
            self._cmd, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self._startup_timeout):
                self.stop()
                raise RuntimeError("fake fal process did not print its address in time")
        self.host = self.proc.stdout.readline().strip()
        if not self.host:
            self.stop()
            raise RuntimeError("fake fal process exited before printing its address")
        return self

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Stop the process; returns its final stats (from the state file)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
        return self.final_stats()

    def final_stats(self) -> dict[str, Any] | None:
        try:
            return json.loads(Path(self.state_file).read_text()).get("stats")
        except (OSError, ValueError):
            return None

    def __enter__(self) -> FakeFalProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def client_env(self) -> dict[str, str]:
        """Environment for a process that should reach this fake through fal_client."""
        return {"FAL_QUEUE_RUN_HOST": self.host, "SSL_CERT_FILE": self.ca_pem_path}

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.base_url, self.ca_pem_path)
        return self._control
