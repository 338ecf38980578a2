"""django-q2 tasks: take ids, call one service (which re-fetches and checks the status).

`TASKS` names every task's dotted path once; whoever enqueues or schedules work takes the
path from it, never writes it out.
"""

from __future__ import annotations

from uuid import UUID

TASKS = {
    "submit": "generations.tasks.submit",
    "finish": "generations.tasks.finish",
    "cancel_on_fal": "generations.tasks.cancel_on_fal",
    "sweep": "generations.tasks.sweep",
    "sweep_callbacks": "generations.tasks.sweep_callbacks",
    "purge_quotes": "generations.tasks.purge_quotes",
    # Schedules already stored in databases name this path: it must keep resolving
    # (generations/callbacks/__init__.py re-exports the function).
    "deliver_callback": "generations.callbacks.deliver_callback",
}


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


def purge_quotes() -> None:
    from generations import quotes

    quotes.purge_expired()
