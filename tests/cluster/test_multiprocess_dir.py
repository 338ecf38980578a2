"""prometheus-client's multiprocess directory (veoproject/metrics/multiprocess.py): emptied
at the start of a host's processes only, a dead process's counters kept in the totals and its
live gauges dropped. Real processes write the files; nothing here is faked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from veoproject.metrics.multiprocess import prepare_directory

REPO = Path(__file__).resolve().parents[2]
# One process of the group: counts two rejected webhooks and holds one request in progress,
# then (when told to stay) waits for its stdin to close.
PROCESS = """
import sys, django
django.setup()
from veoproject.metrics import events
events.webhook_rejected(reason="bad_token")
events.webhook_rejected(reason="bad_token")
events.HTTP_IN_PROGRESS.inc()
print("ready", flush=True)
if sys.argv[1] == "stay":
    sys.stdin.read()
"""


def start(path: Path, mode: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(path),
        "DJANGO_SETTINGS_MODULE": "veoproject.settings_test",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", PROCESS, mode],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def totals(path: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return {
        f"{sample.name}{sorted(sample.labels.items()) or ''}": sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in ("veo_fal_webhook_rejects_total", "veo_http_requests_in_progress")
    }


REJECTS = "veo_fal_webhook_rejects_total[('reason', 'bad_token')]"
IN_PROGRESS = "veo_http_requests_in_progress"


def test_a_directory_nobody_alive_wrote_is_emptied_at_start(tmp_path):
    dead = start(tmp_path, "exit")
    dead.wait(timeout=30)
    assert totals(tmp_path)[REJECTS] == 2
    assert list(tmp_path.glob("*.db"))

    assert prepare_directory(tmp_path) == "emptied"

    assert not list(tmp_path.glob("*.db"))
    assert totals(tmp_path).get(REJECTS, 0) == 0


def test_a_restart_beside_live_processes_keeps_every_counter_and_drops_dead_live_gauges(
    tmp_path,
):
    alive = start(tmp_path, "stay")
    try:
        dead = start(tmp_path, "exit")
        dead.wait(timeout=30)
        assert (tmp_path / f"gauge_livesum_{dead.pid}.db").exists()
        assert totals(tmp_path)[IN_PROGRESS] == 2  # the dead one's request still counted

        assert prepare_directory(tmp_path) == "kept"

        assert totals(tmp_path)[REJECTS] == 4  # both processes' events
        assert totals(tmp_path)[IN_PROGRESS] == 1  # only the live one's request
        assert not (tmp_path / f"gauge_livesum_{dead.pid}.db").exists()
        assert (tmp_path / f"counter_{dead.pid}.db").exists()
    finally:
        alive.communicate(timeout=30)


def test_the_directory_is_created_when_missing(tmp_path):
    path = tmp_path / "not-yet"
    assert prepare_directory(path) == "emptied"
    assert path.is_dir()


@pytest.mark.parametrize("variable", ["", "  "])
def test_the_command_does_nothing_outside_multiprocess_mode(tmp_path, variable):
    # prometheus-client itself takes a blank variable for a directory (the current one, or
    # "  /"): run where its files may land, not in the repository.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": variable, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", "veoproject.metrics.multiprocess"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "metrics_multiproc_dir_ready" not in done.stderr
