"""With DEBUG off and no fal key, the web and the worker refuse to start: a production site
must never charge real users credits for the simulator's sample clip."""

from __future__ import annotations

import subprocess

from tests.processes import run_python


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.FAL_SIMULATED, settings.FAL_KEY)"
    return run_python(
        code,
        drop=["FAL_*"],
        SECRET_KEY="settings-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL="sqlite:////tmp/veo-settings-check.sqlite3",
        **env,
    )


def test_production_without_fal_key_refuses_to_start():
    result = _load_settings(DEBUG="0")
    assert result.returncode != 0
    assert "FAL_SIMULATED=1" in result.stderr


def test_production_simulator_only_when_asked_explicitly():
    result = _load_settings(DEBUG="0", FAL_SIMULATED="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_key_id_and_secret_work_like_fal_key():
    result = _load_settings(DEBUG="0", FAL_KEY_ID="kid", FAL_KEY_SECRET="ksecret")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "kid:ksecret"]


def test_development_runs_the_simulator_without_a_key():
    result = _load_settings(DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"
