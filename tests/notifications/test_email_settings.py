"""Email settings from the environment: EMAIL_URL in one variable, or the separate ones."""

from __future__ import annotations

import json
import subprocess

from tests.processes import run_python

NAMES = [
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_FILE_PATH",
]
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def load(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {NAMES!r}}}))"
    )
    return run_python(
        code,
        drop=["EMAIL_*"],
        DATABASE_URL="sqlite:////tmp/veo-email-settings-check.sqlite3",
        **env,
    )


def settings_of(**env: str) -> dict:
    result = load(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_email_url_sets_the_smtp_server_with_starttls():
    got = settings_of(EMAIL_URL="smtp://mailer:s3cr%40t@smtp.example.com:587/?tls=True")
    assert got["EMAIL_BACKEND"] == SMTP
    assert (got["EMAIL_HOST"], got["EMAIL_PORT"]) == ("smtp.example.com", 587)
    assert (got["EMAIL_HOST_USER"], got["EMAIL_HOST_PASSWORD"]) == ("mailer", "s3cr@t")
    assert (got["EMAIL_USE_TLS"], got["EMAIL_USE_SSL"]) == (True, False)


def test_email_url_ssl_scheme_and_a_separate_variable_overriding_it():
    got = settings_of(EMAIL_URL="smtp+ssl://smtp.example.com:465", EMAIL_HOST="relay.internal")
    assert (got["EMAIL_HOST"], got["EMAIL_PORT"]) == ("relay.internal", 465)
    assert (got["EMAIL_USE_TLS"], got["EMAIL_USE_SSL"]) == (False, True)
    assert settings_of(EMAIL_URL="smtp://h/?tls=False")["EMAIL_USE_TLS"] is False


def test_separate_variables_without_email_url():
    got = settings_of(
        EMAIL_BACKEND=SMTP,
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT="2525",
        EMAIL_HOST_USER="u",
        EMAIL_HOST_PASSWORD="p",
        EMAIL_USE_TLS="1",
    )
    assert [got[n] for n in NAMES[:7]] == [SMTP, "smtp.example.org", 2525, "u", "p", True, False]


def test_file_backend_and_console_default():
    got = settings_of(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH="/tmp/veo-mails",
    )
    assert got["EMAIL_FILE_PATH"] == "/tmp/veo-mails"
    assert settings_of(EMAIL_URL="filemail:////tmp/veo-mails-2")["EMAIL_FILE_PATH"] == (
        "/tmp/veo-mails-2"
    )
    assert settings_of()["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_contradictions_and_unknown_options_refuse_to_start():
    both = load(EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert both.returncode != 0
    assert "not both" in both.stderr
    unknown = load(EMAIL_URL="smtp://h:25/?tsl=True")
    assert unknown.returncode != 0
    assert "TSL" in unknown.stderr
