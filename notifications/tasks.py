"""django-q2 tasks: take ids, call one service (which re-fetches and decides).

`TASKS` names every task's dotted path once; `enqueue` is the one way to put one on the
queue, always from inside `transaction.on_commit` (the services do that)."""

from __future__ import annotations

from uuid import UUID

from django_q.tasks import async_task

TASKS = {
    "generation_outcome": "notifications.tasks.generation_outcome",
    "low_balance": "notifications.tasks.low_balance",
    "purchase_receipt": "notifications.tasks.purchase_receipt",
}


def enqueue(name: str, subject_id: object) -> None:
    """Enqueue task `name` for one id (never a model instance)."""
    arg = str(subject_id)
    async_task(TASKS[name], arg, task_name=f"email-{name}-{arg}"[:100], group=f"email.{name}")


def generation_outcome(generation_id: str) -> None:
    from notifications import services

    services.send_generation_outcome(generation_id=UUID(generation_id))


def low_balance(user_id: str) -> None:
    from notifications import low_balance

    low_balance.check_low_balance(user_id=int(user_id))


def purchase_receipt(purchase_id: str) -> None:
    from notifications import services

    services.send_purchase_receipt(purchase_id=int(purchase_id))
