"""Task paths: named once in `generations.tasks.TASKS`, and every one resolves."""

from __future__ import annotations

from django.utils.module_loading import import_string

from generations import callbacks, dispatch, schedules
from generations.callbacks import delivery
from generations.tasks import TASKS


def test_every_task_path_resolves_to_a_function():
    for name, path in TASKS.items():
        assert callable(import_string(path)), name


def test_deliver_callback_keeps_the_path_stored_schedules_name():
    # django-q2 schedules in existing databases carry this exact string.
    task = import_string("generations.callbacks.deliver_callback")
    assert task is delivery.deliver_callback is callbacks.deliver_callback
    assert TASKS["deliver_callback"] == "generations.callbacks.deliver_callback"


def test_dispatch_and_schedules_take_their_paths_from_the_one_mapping():
    assert dispatch.TASKS is TASKS
    assert {spec["func"] for spec in schedules.SCHEDULES.values()} <= set(TASKS.values())
