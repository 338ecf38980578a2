"""Many threads, each with its own database connection, released at the same instant:
for tests of what must hold under concurrency (they need a database threads share)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections


def race(count: int, action: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Run action(0..count-1) in `count` threads released at the same instant. Returns
    ("ok", result) or ("error", exception) per thread, in thread order."""
    barrier = threading.Barrier(count)
    results: list[tuple[str, Any]] = [("missing", None)] * count

    def run(index: int) -> None:
        try:
            close_old_connections()
            barrier.wait(timeout=30)
            results[index] = ("ok", action(index))
        except BaseException as exc:
            results[index] = ("error", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return results
