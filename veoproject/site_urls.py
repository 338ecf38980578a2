"""Our own absolute URLs: the site's public address (`PUBLIC_BASE_URL`) and a path.

One rule, with one fallback for each kind of link when `PUBLIC_BASE_URL` is not set:

- `for_fal`: a URL fal fetches or posts to (its webhook, our signed image view). It must
  be reachable from the internet, so only `PUBLIC_BASE_URL` will do: without it there is
  none (None), and fal is polled instead of calling back.
- `for_email`: a link in an email, built in a worker with no request: `PUBLIC_BASE_URL`,
  else `http://localhost:8000`, the development server (`veoproject.checks` warns a
  deployment that leaves it unset).
- `for_client`: a URL in an answer to a client (the API's JSON, the generation JSON POSTed
  to a callback, Stripe's return pages): `PUBLIC_BASE_URL`; else the request's own
  scheme and host, which Django's `get_host()` takes only from `ALLOWED_HOSTS` (any other
  Host header is refused with a 400 before a link is made); else, with no request (a
  callback built in a worker), the bare path.

None of them reads a Host header once `PUBLIC_BASE_URL` is set, and a URL for fal or an
email never reads one at all: a forged Host header cannot reach an email, a Stripe return
URL or a URL fal is given. The checks on URLs from outside (callbacks, images we fetch)
are another rule: `veoproject.public_urls`.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

DEVELOPMENT_SITE = "http://localhost:8000"


def _path(path: str) -> str:
    """`path` as given, if it is a path on our site: "/..." but not "//host/...", which a
    browser (and `build_absolute_uri`) reads as another host."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"not a path on this site: {path!r}")
    return path


def is_public() -> bool:
    """Whether the site has a public address, so fal can reach its webhook and images."""
    return bool(settings.PUBLIC_BASE_URL)


def for_fal(path: str) -> str | None:
    """The URL fal is given for `path` on our site; None when the site is not public."""
    path = _path(path)
    return f"{settings.PUBLIC_BASE_URL}{path}" if is_public() else None


def for_email(path: str) -> str:
    """The link to `path` in an email."""
    path = _path(path)
    return f"{settings.PUBLIC_BASE_URL or DEVELOPMENT_SITE}{path}"


def for_client(path: str, request: HttpRequest | Request | None = None) -> str:
    """The URL of `path` in an answer to `request` (None: built outside a request, for a
    callback; then a bare path unless the site is public)."""
    path = _path(path)
    if is_public():
        return f"{settings.PUBLIC_BASE_URL}{path}"
    if request is not None:
        return request.build_absolute_uri(path)
    return path
