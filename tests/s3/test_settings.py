"""`STORAGE=s3` from the environment, as production reads it (veoproject.settings in a fresh
process): django-storages' S3Storage under its own setting names, private objects, URLs
signed for minutes, and the bucket allowed as a media source by the portal's CSP."""

from __future__ import annotations

import subprocess

from tests.processes import printed_json, run_python

SHOW = """
import json, django; django.setup()
from django.conf import settings
from django.core.files.storage import storages
media = storages["default"]
shown = {
    "backend": settings.STORAGES["default"]["BACKEND"],
    "class": type(media).__name__,
    "media_src": [str(s) for s in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["media-src"]],
}
if shown["class"] == "S3Storage":
    shown.update(
        bucket=media.bucket_name,
        region=media.region_name,
        endpoint=media.endpoint_url,
        access_key=media.access_key,
        acl=media.default_acl,
        signed=media.querystring_auth,
        expire=media.querystring_expire,
        addressing=media.client_config.s3["addressing_style"],
    )
print(json.dumps(shown))
"""


STORAGE_VARIABLES = ["AWS_*", "STORAGE*"]


def _run(**env: str) -> subprocess.CompletedProcess:
    return run_python(SHOW, drop=STORAGE_VARIABLES, **env)


def _settings(**env: str) -> dict:
    return printed_json(SHOW, drop=STORAGE_VARIABLES, **env)


def test_storage_s3_reads_django_storages_names_from_the_environment():
    found = _settings(
        STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="veo-media",
        AWS_S3_REGION_NAME="auto",
        AWS_S3_ENDPOINT_URL="https://acct.r2.cloudflarestorage.com",
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_ACCESS_KEY_ID="key-id",
        AWS_SECRET_ACCESS_KEY="secret",
    )
    assert found["backend"] == "storages.backends.s3.S3Storage"
    assert found["class"] == "S3Storage"
    assert (found["bucket"], found["region"]) == ("veo-media", "auto")
    assert found["endpoint"] == "https://acct.r2.cloudflarestorage.com"
    assert found["access_key"] == "key-id"
    assert found["acl"] is None  # no public-read: the bucket stays private
    assert (found["signed"], found["expire"]) == (True, 300)
    assert found["addressing"] == "path"
    assert found["media_src"] == [
        "'self'",
        "https://acct.r2.cloudflarestorage.com",
        "https://*.acct.r2.cloudflarestorage.com",
    ]


def test_on_aws_the_csp_allows_s3_hosts_and_the_expiry_is_a_setting():
    found = _settings(
        STORAGE="s3", AWS_STORAGE_BUCKET_NAME="veo-media", AWS_QUERYSTRING_EXPIRE="120"
    )
    assert found["endpoint"] is None
    assert found["expire"] == 120
    assert found["media_src"] == ["'self'", "https://*.amazonaws.com"]


def test_local_is_the_default():
    found = _settings()
    assert found["class"] == "FileSystemStorage"
    assert found["media_src"] == ["'self'"]


def test_s3_without_a_bucket_or_an_unknown_storage_refuses_to_start():
    assert "AWS_STORAGE_BUCKET_NAME" in _run(STORAGE="s3").stderr
    assert "STORAGE is local" in _run(STORAGE="gcs").stderr
