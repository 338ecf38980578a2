"""Test settings: fast hashers, in-memory email and cache, tasks run inline."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")

from veoproject.settings import *  # noqa: F403
from veoproject.settings import DATABASES, FAL_MEDIA_HOSTS, Q_CLUSTER

# Threads (the ledger race tests) and real worker processes (end-to-end tests) must share
# the test database, which an in-memory SQLite database cannot do: use a file, one per
# test process, so that parallel runs (several developers, xdist workers) never collide.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    import tempfile

    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"veo-test-{os.getpid()}.sqlite3"),
        **DATABASES["default"].get("TEST", {}),
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests change prices and blocked terms in ways that send no signals (bulk_create,
# update, rolled-back transactions): read them every time unless a test turns it on.
LOCAL_CACHE_SECONDS = 0
# Unit tests run tasks inline; end-to-end tests start real qcluster processes with
# veoproject.settings instead.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PRIVATE_URLS_ALLOWED = True
# Test requests name images on hosts that do not exist (images.example.com): the worker's
# fetch of `image_url` is tested on its own (tests/generations/test_image_url_check.py).
IMAGE_URL_CHECK = False
# The fake fal serves its videos from 127.0.0.1 (in-process and standalone).
FAL_MEDIA_HOSTS = [*FAL_MEDIA_HOSTS, "127.0.0.1", "localhost"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
