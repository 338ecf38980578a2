"""The shared directory of prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`):
made ready before a process group starts, and tidied when one of its processes dies.

prometheus-client keeps each process's event metrics in files named by pid
(`counter_<pid>.db`, `histogram_<pid>.db`, `gauge_livesum_<pid>.db`...) and a scrape adds up
every file there. What stays and what goes:

* Counters and histograms of a dead process **stay**: a worker that was killed or recycled
  still counted real events, and the totals must not go backwards while the host runs
  (Prometheus would read a reset). A new process that happens to get a dead one's pid
  simply goes on from that file's numbers, which keeps the sum right.
* Live gauges (`multiprocess_mode="livesum"`: requests in progress) of a dead process **go**:
  gunicorn's `child_exit` hook (`veoproject.metrics.gunicorn`) removes a worker's at once,
  and `prepare_directory` removes those whose process is gone at any start, which covers a
  gunicorn master SIGKILLed with its workers (no hook ran).
* The whole directory is **emptied** only when no process of the group is alive, i.e. at the
  first start of the host's processes (counters start again from zero, as Prometheus
  expects after a restart of everything). A web or worker process restarted while the others
  run keeps everybody's numbers.

"Alive" is judged by pid, so the directory belongs to the processes of one host (one pid
namespace): gunicorn and qcluster of one machine or one container, not a volume shared
between containers. `prepare_directory` runs in gunicorn's `on_starting` hook and, for the
worker, as `python -m veoproject.metrics.multiprocess` before `qcluster` (see Procfile).
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
from pathlib import Path

from prometheus_client import multiprocess

ENV = "PROMETHEUS_MULTIPROC_DIR"
LOCK_NAME = ".prepare.lock"  # no ".db": the collector reads only *.db files
_FILE = re.compile(r"^(?P<kind>[a-z_]+)_(?P<pid>\d+)\.db$")


def directory() -> Path | None:
    """The multiprocess directory from the environment, or None outside that mode."""
    path = os.environ.get(ENV, "").strip()
    return Path(path) if path else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def prepare_directory(path: Path) -> str:
    """Create `path` if needed and tidy it (module docstring): return "emptied" when no
    process owning a file there was alive, else "kept" (after removing dead processes' live
    gauges). Serialised by a lock file, so two processes starting together agree."""
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        files = [(f, _FILE.match(f.name)) for f in path.glob("*.db")]
        # Not this process: importing the metrics may have made its own files already.
        owners = {int(m["pid"]) for _, m in files if m} - {os.getpid()}
        if not any(pid_alive(pid) for pid in owners):
            for file, _ in files:
                file.unlink(missing_ok=True)
            return "emptied"
        for pid in owners:
            if not pid_alive(pid):
                multiprocess.mark_process_dead(pid, str(path))
        return "kept"


def process_died(pid: int) -> None:
    """A process of the group ended (gunicorn's `child_exit`): drop its live gauges."""
    path = directory()
    if path is not None:
        multiprocess.mark_process_dead(pid, str(path))


def main() -> int:
    path = directory()
    if path is None:
        return 0  # not in multiprocess mode: nothing to prepare
    outcome = prepare_directory(path)
    print(f"event=metrics_multiproc_dir_ready path={path} outcome={outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
