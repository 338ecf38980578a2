"""Small, hot, rarely changed tables kept for a few seconds in each process.

Every create reads the active prices and the active blocked terms; both change only when
staff edit them. A `LocalCache` keeps what a loader read in this process's memory for
LOCAL_CACHE_SECONDS (0: off, every call reads the database), so the accept path does not
pay a round trip for each.

What a staff change means:
- In the process that saves or deletes a row of a model the cache is `invalidated_by`,
  the cache is cleared at once (post_save / post_delete) and again when the transaction
  commits, so that process never serves the old rows after its own change.
- Every other process (the other gunicorn workers, the task workers) sees the change
  within LOCAL_CACHE_SECONDS: there is no cross-process invalidation.
- Writes that send no signals (`QuerySet.update`, `bulk_create`, raw SQL, another
  process) are seen within LOCAL_CACHE_SECONDS too; a module that makes such a write to
  a cached table clears its cache itself.

Prices are safe to cache that way because a price shown to a user is a binding quote
(`generations.quotes`): a create with a quote pays the quote, whatever a process has
cached; a create with `max_cost_credits` is refused rather than charged more. Values are
cached as the loader returns them: loaders return immutable values, or their callers
copy them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from time import monotonic
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

T = TypeVar("T")

MAX_ENTRIES = 256  # per cache: keys are a few model ids; a runaway caller cannot grow it

_caches: list[LocalCache[Any]] = []


class LocalCache(Generic[T]):
    """Values by key, each kept LOCAL_CACHE_SECONDS after it was loaded in this process.

    `invalidated_by`: models whose save or delete in this process clears the cache."""

    def __init__(self, name: str, *, invalidated_by: Iterable[type[models.Model]] = ()) -> None:
        self.name = name
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._lock = threading.Lock()
        for model in invalidated_by:
            uid = f"local_cache:{name}:{model._meta.label}"
            post_save.connect(self._changed, sender=model, weak=False, dispatch_uid=uid)
            post_delete.connect(self._changed, sender=model, weak=False, dispatch_uid=uid)
        _caches.append(self)

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The value under `key`, loaded with `load()` if absent or older than the TTL."""
        seconds = settings.LOCAL_CACHE_SECONDS
        if seconds <= 0:
            return load()
        now = monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + seconds, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _changed(self, *, using: str | None = None, **kwargs: Any) -> None:
        # Now, for reads later in the saving transaction; at commit, for a value another
        # thread of this process loaded before the change was committed.
        self.clear()
        transaction.on_commit(self.clear, using=using)


def clear_all() -> None:
    """Empty every local cache of this process (tests, or after a bulk change)."""
    for cache in _caches:
        cache.clear()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    # A test that turns the cache on must not find values an earlier test left.
    if setting == "LOCAL_CACHE_SECONDS":
        clear_all()


setting_changed.connect(_setting_changed, dispatch_uid="local_cache:setting_changed")
