"""The WSGI module warms a web process up: the first create in a new gunicorn worker no
longer compiles Django's URL regular expression (30-50 ms) while a user waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a new interpreter (the compiled patterns are process-wide): start as gunicorn does
# (import the WSGI module) or only set Django up, then count the regular expressions
# compiled while an image URL is checked as the create's validation checks it.
PROBE = """
import sys
import django
if sys.argv[1] == "wsgi":
    import veoproject.wsgi
else:
    django.setup()
import re._compiler
compiled = []
original = re._compiler.compile
re._compiler.compile = lambda *args, **kwargs: compiled.append(args[0]) or original(*args, **kwargs)
from veoproject.public_urls import check_public_url
check_public_url("https://images.example.com/boat.jpg", schemes=("https",))
print(len(compiled))
"""


def compiled_on_first_check(start: str) -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "veoproject.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, start],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_a_web_process_compiles_nothing_on_its_first_url_check():
    assert compiled_on_first_check("wsgi") == 0


def test_without_the_warm_up_the_first_check_compiles():
    """The probe can tell: a process that is only set up compiles on its first check."""
    assert compiled_on_first_check("setup") > 0
