"""django-q2 tasks: take ids, re-fetch, call one service."""

from __future__ import annotations


def sweep() -> None:
    from generations import services

    services.sweep()
