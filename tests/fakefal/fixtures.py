"""pytest fixtures for the fake fal server; import them from tests/conftest.py::

    from tests.fakefal.fixtures import fake_fal, fake_fal_factory, fake_fal_process  # noqa: F401

``fake_fal`` starts an in-process server per test and points fal_client at it:
FAL_QUEUE_RUN_HOST and SSL_CERT_FILE are set (for subprocesses and for a fal_client
imported later), and, because fal_client freezes the host at import, the module constant
``fal_client.client.QUEUE_URL_FORMAT`` (read at call time by submit/status/result/cancel)
is patched too, and so are the storage hosts ``REST_URL`` and ``CDN_URL`` (uploads).
SSL_CERT_FILE is read by httpx when a client is *created*; all in-process fakes share
one CA, so a SyncClient created during any fake_fal test stays valid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .process import FakeFalProcess
from .server import FakeFal


def fal_client_env(host: str, ca_pem_path: str) -> dict[str, str]:
    """Environment variables that point a fresh fal_client process at a fake. fal-client
    has no variable for its storage hosts: our settings FAL_STORAGE_* stand in."""
    return {
        "FAL_QUEUE_RUN_HOST": host,
        "SSL_CERT_FILE": ca_pem_path,
        "FAL_STORAGE_REST_URL": f"https://{host}",
        "FAL_STORAGE_CDN_URL": f"https://{host}",
    }


def point_fal_client_at(host: str, ca_pem_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fal_client_env(host, ca_pem_path).items():
        monkeypatch.setenv(name, value)
    try:
        import fal_client.auth
        import fal_client.client
    except ImportError:  # pragma: no cover - fal_client is a project dependency
        return
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"https://{host}/")
    monkeypatch.setattr(fal_client.auth, "FAL_QUEUE_RUN_HOST", host)
    # Storage (uploads): module globals read at call time (tests/fakefal/storage.py).
    monkeypatch.setattr(fal_client.client, "REST_URL", f"https://{host}")
    monkeypatch.setattr(fal_client.client, "CDN_URL", f"https://{host}")


@pytest.fixture
def fake_fal_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeFal]]:
    """``make(**config)`` starts a FakeFal with that config and points fal_client at it
    (the last one made wins); all are stopped after the test."""
    servers: list[FakeFal] = []

    def make(**config: Any) -> FakeFal:
        server = FakeFal(**config).start()
        servers.append(server)
        point_fal_client_at(server.host, server.ca_pem_path, monkeypatch)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def fake_fal(fake_fal_factory: Callable[..., FakeFal]) -> FakeFal:
    """A started FakeFal (defaults: queue 0.5 s, run 1 s, 2 concurrent, any key)."""
    return fake_fal_factory()


@pytest.fixture
def fake_fal_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFalProcess]:
    """The fake as a separate process (for qcluster/e2e); env is set for children.

    Configure it through ``.control`` (stats, configure, fail_next, reset, ...).
    """
    with FakeFalProcess() as proc:
        point_fal_client_at(proc.host, proc.ca_pem_path, monkeypatch)
        yield proc
