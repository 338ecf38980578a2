"""veoproject.settings plus the ceiling view, for benchmarks only.

The production URLconf stays clean: the extra route lives in bench/urls.py, and its one
table is created with `migrate --run-syncdb` (the app has no migrations).
"""

from veoproject.settings import *  # noqa: F403
from veoproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
