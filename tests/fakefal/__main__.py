"""Run the fake fal server as a process: ``python -m tests.fakefal --port 0 ...``.

The first stdout line is ``127.0.0.1:PORT`` (flushed), for FAL_QUEUE_RUN_HOST.
``--state-file`` (JSON) receives host, CA and webhook key at start-up and the final
stats at exit; if it already holds a CA and webhook key they are reused, so a restarted
server (same ``--port``) is still trusted by clients that loaded the old CA and JWKS.
Stops on SIGTERM/SIGINT, or on stdin EOF with ``--watch-stdin`` (parent died).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from .server import FakeFal
from .tls import create_identity


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fakefal", description=__doc__)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ca-out", help="write the CA PEM here (default: a temp file)")
    p.add_argument("--state-file", help="JSON file with identity and stats (see above)")
    p.add_argument("--video", help="MP4 served at /files/{id}.mp4")
    p.add_argument("--queue-seconds", type=float)
    p.add_argument("--run-seconds", type=float)
    p.add_argument("--max-concurrent", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--accept-key", action="append", help="accepted FAL key (repeatable)")
    p.add_argument(
        "--config",
        help='more FakeFalConfig fields as JSON, or @file.json (e.g. {"faults": {...}})',
    )
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        text = Path(args.config[1:]).read_text() if args.config.startswith("@") else args.config
        config.update(json.loads(text))
    flags = {
        "queue_seconds": args.queue_seconds,
        "run_seconds": args.run_seconds,
        "max_concurrent": args.max_concurrent,
        "seed": args.seed,
        "accepted_keys": args.accept_key,
    }
    config.update({k: v for k, v in flags.items() if v is not None})
    return config


def _write_json(path: str, data: dict[str, Any]) -> None:
    # Atomic, so a reader polling the file never sees half of it.
    tmp = f"{path}.tmp{os.getpid()}"
    Path(tmp).write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    previous: dict[str, Any] = {}
    if args.state_file and Path(args.state_file).exists():
        try:
            previous = json.loads(Path(args.state_file).read_text())
        except ValueError:
            previous = {}
    ca_out = args.ca_out or os.path.join(tempfile.mkdtemp(prefix="fakefal-"), "ca.pem")
    tls = create_identity(
        ca_out,
        ca_pem=previous.get("ca_pem", "").encode() or None,
        ca_key_pem=previous.get("ca_key_pem", "").encode() or None,
    )
    key_pem = previous.get("webhook_key_pem")
    webhook_key = load_pem_private_key(key_pem.encode(), None) if key_pem else None
    assert webhook_key is None or isinstance(webhook_key, Ed25519PrivateKey)

    fal = FakeFal(
        bind=args.bind,
        port=args.port,
        tls=tls,
        video_path=args.video,
        webhook_key=webhook_key,
        **_config(args),
    )
    fal.start()

    state: dict[str, Any] = {
        "version": 1,
        "pid": os.getpid(),
        "host": fal.host,
        "base_url": fal.base_url,
        "ca_pem_path": fal.ca_pem_path,
        "jwks_url": fal.jwks_url,
        "jwks": fal.jwks,
        "user_id": fal.config.user_id,
        "started_at": time.time(),
        # Throwaway test secrets, kept so a restart reuses them.
        "ca_pem": tls.ca_pem.decode(),
        "ca_key_pem": tls.ca_key_pem.decode(),
        "webhook_key_pem": fal.webhook_private_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ).decode(),
    }
    if args.state_file:
        _write_json(args.state_file, state)
    # Last, so whoever waits for this line finds the state file complete.
    print(fal.host, flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if args.watch_stdin:
        threading.Thread(
            target=lambda: (sys.stdin.read(), done.set()), daemon=True, name="stdin-watch"
        ).start()
    while not done.wait(0.5):  # a timed wait keeps signal handling prompt
        pass

    if args.state_file:
        _write_json(args.state_file, {**state, "stopped_at": time.time(), "stats": fal.stats()})
    fal.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
