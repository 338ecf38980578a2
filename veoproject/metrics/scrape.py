"""`/metrics`: who may read it, and the registry one scrape reads."""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from veoproject.exceptions import error_body
from veoproject.metrics.database import DatabaseCollector
from veoproject.metrics.events import EVENTS


class _Events:
    """This process's event metrics, for a scrape outside multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return EVENTS.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Events())
    registry.register(DatabaseCollector())
    return registry


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = access_refusal(request)
    if refusal is not None:
        return refusal
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(scrape_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


def access_refusal(request: HttpRequest) -> HttpResponse | None:
    """None if this request may read the metrics; else the answer: 404 when /metrics is not
    served (or only to addresses, and this is not one), 401 when a token would open it."""
    token, allow = settings.METRICS_TOKEN, settings.METRICS_ALLOW
    if token and constant_time_compare(bearer_token(request), token):
        return None
    if allow and address_allowed(request, allow):
        return None
    if token:
        response = JsonResponse(
            error_body("not_authenticated", "A valid metrics token is required."), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def bearer_token(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def address_allowed(request: HttpRequest, allow: Iterable[str]) -> bool:
    """Whether the client (the project's one rule: `accounts.limits.client_address`) is in
    one of the networks. That rule stands an IPv6 client for its /64, so an IPv6 entry
    admits the /64s it overlaps."""
    from accounts.limits import IPV6_PREFIX, client_address

    address = client_address(request)
    if address is None:
        return False
    client = ipaddress.ip_network(
        f"{address}/{IPV6_PREFIX}" if ":" in address else address, strict=False
    )
    return any(client.overlaps(network) for network in allowed_networks(tuple(allow)))


@functools.cache
def allowed_networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)
