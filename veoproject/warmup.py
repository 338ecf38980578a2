"""Work a web process would otherwise do on its first requests, done as it starts.

Django compiles some regular expressions on first use: `URLValidator`'s (the one that
accepts internationalised host names) takes 30-50 ms to compile, and every API create
with an `image_url` checks that URL. Done here, from the WSGI module, the first create
in each gunicorn worker is no slower than the others, after a deployment and after each
worker restart. Nothing here touches the database or the network: a process starts as
it did when they are down."""

from __future__ import annotations

from django.urls import get_resolver

from veoproject.public_urls import check_public_url


def warm_up() -> None:
    get_resolver().url_patterns  # noqa: B018 - imports every view, serializer and form
    check_public_url("https://example.com/image.jpg", schemes=("https",))
