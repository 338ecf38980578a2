"""`manage.py check --deploy` names what a deployment is missing beyond the code."""

from __future__ import annotations

from django.core.checks import run_checks


def _ids(include_deployment_checks: bool) -> set[str]:
    return {m.id for m in run_checks(include_deployment_checks=include_deployment_checks)}


def test_a_deployment_without_public_base_url_is_warned(settings):
    settings.PUBLIC_BASE_URL = ""
    assert "veoproject.W002" in _ids(True)
    assert "veoproject.W002" not in _ids(False)  # development (runserver) stays quiet

    settings.PUBLIC_BASE_URL = "https://veo.example.com"
    assert "veoproject.W002" not in _ids(True)
