"""System checks for what a release needs beyond the code: `manage.py check --database
default` (and `migrate`, before it starts) names anything missing and how to fix it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache.backends.db import DatabaseCache
from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder


@register(Tags.database, Tags.caches)
def cache_tables(databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every database cache needs its table; migration generations.0007 makes it."""
    messages: list[CheckMessage] = []
    for alias in databases or []:
        applied = MigrationRecorder(connections[alias]).applied_migrations()
        if ("generations", "0007_cache_table") not in applied:
            continue  # pending migrations make it; `migrate` is running or will run
        tables = set(connections[alias].introspection.table_names())
        for name, cache in settings.CACHES.items():
            if cache["BACKEND"] != f"{DatabaseCache.__module__}.{DatabaseCache.__name__}":
                continue
            if cache["LOCATION"] not in tables:
                messages.append(
                    Warning(
                        f"The cache {name!r} needs the table {cache['LOCATION']!r}, which "
                        f"database {alias!r} does not have: every API request would fail.",
                        hint="Run `manage.py migrate` (or `manage.py createcachetable`).",
                        id="veoproject.W001",
                    )
                )
    return messages


@register(Tags.compatibility, deploy=True)
def public_base_url(**kwargs: Any) -> list[CheckMessage]:
    """Emails (video ready, receipts, verification) carry links to the site, and fal's
    webhooks need an address to reach: without PUBLIC_BASE_URL a deployment sends people
    links to localhost. `manage.py check --deploy` says so."""
    if settings.PUBLIC_BASE_URL:
        return []
    return [
        Warning(
            "PUBLIC_BASE_URL is not set: links in emails point at http://localhost:8000 and "
            "fal cannot deliver webhooks (completion then waits for polling).",
            hint="Set PUBLIC_BASE_URL to the site's https address, e.g. https://veo.example.com.",
            id="veoproject.W002",
        )
    ]


@register(Tags.security)
def any_host_allowed(**kwargs: Any) -> list[CheckMessage]:
    """With "*" in ALLOWED_HOSTS Django takes any Host header, and some links are made from
    it: without PUBLIC_BASE_URL the API's URLs, Stripe's return pages and allauth's email
    links (`veoproject.site_urls`, `accounts.adapters`); always Django's redirect to https
    and allauth's social-login callbacks. A leading-dot entry (".example.com") is not
    warned: it admits only subdomains of a domain the operator named."""
    if settings.DEBUG or "*" not in settings.ALLOWED_HOSTS:
        return []
    return [
        Warning(
            "ALLOWED_HOSTS contains '*': any Host header is accepted, and some links (the "
            "https redirect, social-login callbacks; without PUBLIC_BASE_URL also API URLs, "
            "Stripe return pages and account emails) take their host from it.",
            hint="List the site's host names in ALLOWED_HOSTS, e.g. veo.example.com.",
            id="veoproject.W003",
        )
    ]
