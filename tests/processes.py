"""Python run in a fresh process with the production settings module, for what only a
new process shows: settings read from the environment, refusals to start, logging set up
at start. One definition of "this environment, minus some variables, plus others"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def django_env(*, drop: Iterable[str] = (), **env: str) -> dict[str, str]:
    """This process's environment with `veoproject.settings` selected and DEBUG on, every
    variable named in `drop` (or starting with a name there that ends in "*") removed,
    and `env` set on top."""
    exact = {name for name in drop if not name.endswith("*")}
    prefixes = tuple(name[:-1] for name in drop if name.endswith("*"))
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in exact and not (prefixes and k.startswith(prefixes))
    }
    clean.update(DJANGO_SETTINGS_MODULE="veoproject.settings", DEBUG="1")
    clean.update(env)
    return clean


def run_python(
    code: str, *, drop: Iterable[str] = (), timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -c code` in the project's folder with `django_env(drop=drop, **env)`."""
    return run_args([sys.executable, "-c", code], drop=drop, timeout=timeout, **env)


def run_args(
    args: list[str], *, drop: Iterable[str] = (), timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=django_env(drop=drop, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def printed_json(code: str, *, drop: Iterable[str] = (), **env: str) -> Any:
    """Run `code`, which prints one JSON document as its last line, and return it."""
    done = run_python(code, drop=drop, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
