"""Throwaway TLS identity for the fake fal server.

fal_client only speaks https, so the fake needs a certificate the client trusts.
One trustme CA is shared by every in-process server: httpx builds its SSL context
once per client (when ``SyncClient._client`` is first used), so a cached client keeps
working across tests only if every fake presents a certificate from the same CA.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme

_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TLSIdentity:
    """A CA (PEM on disk, for SSL_CERT_FILE) and a server certificate it signed."""

    ca_pem: bytes
    ca_key_pem: bytes
    cert_chain_pem: bytes
    key_pem: bytes
    ca_pem_path: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain only takes files.
        with tempfile.TemporaryDirectory(prefix="fakefal-tls-") as directory:
            chain, key = Path(directory, "chain.pem"), Path(directory, "key.pem")
            chain.write_bytes(self.cert_chain_pem)
            key.write_bytes(self.key_pem)
            ctx.load_cert_chain(str(chain), str(key))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def create_identity(
    ca_pem_path: str | os.PathLike[str] | None = None,
    *,
    ca_pem: bytes | None = None,
    ca_key_pem: bytes | None = None,
) -> TLSIdentity:
    """Issue a server certificate for 127.0.0.1/localhost.

    Reuses the CA given as ``ca_pem``/``ca_key_pem`` (so a restarted standalone server
    stays trusted by clients that already loaded the CA), otherwise makes a new one.
    The CA certificate is written to ``ca_pem_path`` (a temp file if None).
    """
    if ca_pem is not None and ca_key_pem is not None:
        ca = trustme.CA.from_pem(ca_pem, ca_key_pem)
    else:
        ca = trustme.CA(organization_name="fakefal test CA")
    leaf = ca.issue_cert(*_HOSTS)
    if ca_pem_path is None:
        fd, name = tempfile.mkstemp(prefix="fakefal-ca-", suffix=".pem")
        os.close(fd)
        ca_pem_path = name
        atexit.register(_unlink, name)
    path = Path(ca_pem_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(path))
    return TLSIdentity(
        ca_pem=ca.cert_pem.bytes(),
        ca_key_pem=ca.private_key_pem.bytes(),
        cert_chain_pem=b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
        key_pem=leaf.private_key_pem.bytes(),
        ca_pem_path=str(path),
    )


_shared: TLSIdentity | None = None
_shared_lock = threading.Lock()


def shared_identity() -> TLSIdentity:
    """The process-wide identity used by servers that were not given one."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = create_identity()
        return _shared


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
