"""django-q2 tasks: take ids, call one service (which re-fetches and checks the status)."""

from __future__ import annotations

from uuid import UUID


def submit(generation_id: str) -> None:
    from generations import services

    services.submit(generation_id=UUID(generation_id))


def finish(generation_id: str) -> None:
    from generations import services

    services.finish(generation_id=UUID(generation_id))


def cancel_on_fal(request_id: str) -> None:
    from generations import services

    services.cancel_on_fal(request_id=request_id)


def sweep(token: str | None = None) -> None:
    from generations import dispatch

    dispatch.run_sweep(token=token)


def sweep_callbacks() -> None:
    from generations import callbacks

    callbacks.sweep_callbacks()
