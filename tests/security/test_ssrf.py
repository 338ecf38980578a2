"""Server-side request forgery: a URL someone else names makes our worker fetch inside our
network (cloud metadata, loopback services) and hands the answer back as a user's video,
or aims our callbacks at internal addresses.

The video copy takes its URL from fal's result or from a webhook; the callback URL comes
from an API client. DNS and routing are replaced at the machine's edge
(tests/security/internet.py): a name can answer a public address and still be served by
a local server, and 169.254.169.254 is a local "metadata" server holding a secret. Each
test performs the attack and fails on the code before the one public-address rule
(veoproject/public_urls.py).
"""

from __future__ import annotations

import logging
import time

import pytest

from accounts.models import CreditAccount, LedgerEntry
from generations import callbacks, services
from generations.models import CallbackAttempt, Generation
from generations.requests import validate_params
from generations.services import finishing
from tests.factories import REQUEST_BODY, GenerationFactory
from tests.security.internet import (  # noqa: F401
    answer,
    internet,
    redirect,
    servers,
    tls,
    trickle,
)
from veoproject.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db

SECRET = b'{"AccessKeyId": "ASIA-METADATA-SECRET"}'
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 1000
PUBLIC_IP = "93.184.216.34"  # where the fake DNS sends fal's media host
METADATA_IP = "169.254.169.254"


@pytest.fixture
def media_hosts(settings):
    """fal's media hosts are `*.fal.test`; private addresses are refused."""
    settings.FAL_MEDIA_HOSTS = ["fal.test"]
    settings.PRIVATE_URLS_ALLOWED = False
    return settings


@pytest.fixture
def metadata(servers, tls, internet):  # noqa: F811
    """A cloud-metadata server at 169.254.169.254 (https, so an old copy would succeed)."""
    certs = tls(
        "media.fal.test", "cdn.fal.test", "evil.fal.test", METADATA_IP, "127.0.0.1", "localhost"
    )
    server = servers(lambda request: [answer(200, SECRET)], tls=certs.server_context)
    internet.route(METADATA_IP, server)
    server.certs = certs
    return server


def copy_video(user, url: str) -> Generation:
    """A generation fal reported finished with `url` as its video, its hold in place; the
    worker then copies the video (services.finish, as the finish task does)."""
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(
        status="running", fal_request_id="req-ssrf", fal_video_url=url
    )
    services.finish(generation_id=generation.pk)
    generation.refresh_from_db()
    return generation


def assert_refused_and_released(generation: Generation, user) -> None:
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert not generation.video
    assert "ASIA" not in generation.error_message and "169.254" not in generation.error_message
    assert CreditAccount.objects.get(user=user).reserved == 0
    entries = LedgerEntry.objects.filter(generation=generation).order_by("id")
    assert list(entries.values_list("kind", flat=True)) == ["hold", "release"]


# --- The video copy -------------------------------------------------------------------------


def test_result_video_on_a_non_fal_host_is_not_fetched(user, settings, metadata, caplog):
    """The default test settings allow private addresses: the allow-list alone refuses."""
    settings.FAL_MEDIA_HOSTS = ["fal.media"]
    with caplog.at_level(logging.WARNING, logger="generations.services.finishing"):
        generation = copy_video(user, f"https://127.0.0.1:{metadata.port}/latest/meta-data/")
    assert metadata.requests == []
    assert_refused_and_released(generation, user)
    assert "event=video_url_refused" in caplog.text
    assert "127.0.0.1" in caplog.text  # staff see the raw cause in the log


def test_plain_http_video_url_is_not_fetched(user, settings, servers):  # noqa: F811
    settings.FAL_MEDIA_HOSTS = ["127.0.0.1"]
    server = servers(lambda request: [answer(200, VIDEO)])
    generation = copy_video(user, f"http://127.0.0.1:{server.port}/video.mp4")
    assert server.requests == []
    assert_refused_and_released(generation, user)


def test_fal_media_host_resolving_to_loopback_is_refused(
    user,
    media_hosts,
    metadata,
    internet,  # noqa: F811
):
    internet.answer("media.fal.test", ["127.0.0.1"])
    generation = copy_video(user, f"https://media.fal.test:{metadata.port}/video.mp4")
    assert metadata.requests == []
    assert_refused_and_released(generation, user)


def test_fal_media_host_redirecting_to_cloud_metadata_is_refused(
    user,
    media_hosts,
    metadata,
    internet,  # noqa: F811
    servers,  # noqa: F811
):
    cdn = servers(
        lambda request: redirect(f"https://{METADATA_IP}/latest/meta-data/iam/credentials"),
        tls=metadata.certs.server_context,
    )
    internet.answer("media.fal.test", [PUBLIC_IP])
    internet.route(PUBLIC_IP, cdn)
    generation = copy_video(user, "https://media.fal.test/files/out.mp4")
    assert len(cdn.requests) == 1  # the first hop is fal's and is fetched
    assert metadata.requests == []
    assert_refused_and_released(generation, user)


def test_redirect_to_a_fal_name_that_resolves_inside_is_refused(
    user,
    media_hosts,
    metadata,
    internet,  # noqa: F811
    servers,  # noqa: F811
):
    """The second hop passes the allow-list; its address does not."""
    cdn = servers(
        lambda request: redirect("https://evil.fal.test/latest/meta-data/"),
        tls=metadata.certs.server_context,
    )
    internet.answer("media.fal.test", [PUBLIC_IP])
    internet.answer("evil.fal.test", [METADATA_IP])
    internet.route(PUBLIC_IP, cdn)
    generation = copy_video(user, "https://media.fal.test/files/out.mp4")
    assert metadata.requests == []
    assert_refused_and_released(generation, user)


def test_redirect_off_the_media_hosts_is_refused_even_where_private_urls_are_allowed(
    user,
    settings,
    metadata,
    servers,  # noqa: F811
):
    settings.FAL_MEDIA_HOSTS = ["127.0.0.1"]  # as the tests' fake fal is configured
    first = servers(
        lambda request: redirect(f"https://localhost:{metadata.port}/latest/meta-data/"),
        tls=metadata.certs.server_context,
    )
    generation = copy_video(user, f"https://127.0.0.1:{first.port}/files/out.mp4")
    assert len(first.requests) == 1
    assert metadata.requests == []
    assert_refused_and_released(generation, user)


def test_media_host_rebinding_between_redirect_hops_is_refused(
    user,
    media_hosts,
    metadata,
    internet,  # noqa: F811
    servers,  # noqa: F811
):
    """DNS rebinding: the name answers a public address for the first hop, then the
    metadata address when the redirect opens a new connection to the same name."""
    cdn = servers(lambda request: redirect("/files/out-2.mp4"), tls=metadata.certs.server_context)
    internet.answer("media.fal.test", [PUBLIC_IP], [METADATA_IP])
    internet.route(PUBLIC_IP, cdn)
    generation = copy_video(user, "https://media.fal.test/files/out.mp4")
    assert len(cdn.requests) == 1
    assert metadata.requests == []
    assert_refused_and_released(generation, user)


def test_endless_redirects_within_fal_are_refused(user, media_hosts, metadata, internet, servers):  # noqa: F811
    cdn = servers(lambda request: redirect("/again"), tls=metadata.certs.server_context)
    internet.answer("media.fal.test", [PUBLIC_IP])
    internet.route(PUBLIC_IP, cdn)
    generation = copy_video(user, "https://media.fal.test/files/out.mp4")
    assert len(cdn.requests) == finishing.VIDEO_COPY_MAX_REDIRECTS + 1
    assert_refused_and_released(generation, user)


def test_a_fal_media_video_is_still_copied(user, media_hosts, metadata, internet, servers):  # noqa: F811
    """The rule lets the real thing through: fal's CDN, one redirect within it."""
    cdn = servers(
        lambda request: (
            redirect("https://cdn.fal.test/v.mp4")
            if request.path == "/files/out.mp4"
            else [answer(200, VIDEO)]
        ),
        tls=metadata.certs.server_context,
    )
    internet.answer("media.fal.test", [PUBLIC_IP])
    internet.answer("cdn.fal.test", ["2606:4700:4700::1111"])
    internet.route(PUBLIC_IP, cdn)
    internet.route("2606:4700:4700::1111", cdn)
    generation = copy_video(user, "https://media.fal.test/files/out.mp4")
    assert generation.status == "succeeded"
    assert generation.video.read() == VIDEO
    assert cdn.requests[1].headers["Host"] == "cdn.fal.test"


def test_a_video_trickling_one_byte_at_a_time_is_cut_off_at_the_total_deadline(
    user,
    settings,
    servers,  # noqa: F811
    monkeypatch,
    tls,  # noqa: F811
):
    """One byte every 0.3 s never trips a per-read timeout; the copy's total deadline
    (shortened here from 60 s) ends it, and the sweep retries later without charging."""
    settings.FAL_MEDIA_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(finishing, "VIDEO_COPY_DEADLINE_SECONDS", 1.5)
    certs = tls("127.0.0.1")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n"
    slow = servers(lambda request: [head, *trickle(b"x" * 20, 0.3)], tls=certs.server_context)
    started = time.monotonic()
    generation = copy_video(user, f"https://127.0.0.1:{slow.port}/files/out.mp4")
    assert time.monotonic() - started < 3.5
    assert generation.status == "running" and generation.finish_failures == 1
    assert not generation.video
    assert CreditAccount.objects.get(user=user).reserved == generation.cost_credits


def test_an_oversize_video_is_refused_at_the_cap(user, settings, servers, tls):  # noqa: F811
    """No Content-Length to refuse up front: the stream itself is cut at the cap."""
    settings.FAL_MEDIA_HOSTS = ["127.0.0.1"]
    settings.VIDEO_MAX_BYTES = 64 * 1024
    certs = tls("127.0.0.1")
    chunk = b"v" * 16 * 1024
    sent = []

    def endless(request):
        yield b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"  # read until close
        for _ in range(1000):  # 16 MB, far past the cap
            sent.append(len(chunk))
            yield chunk

    server = servers(endless, tls=certs.server_context)
    generation = copy_video(user, f"https://127.0.0.1:{server.port}/files/out.mp4")
    assert (generation.status, generation.error_code) == ("failed", "storage_error")
    assert not generation.video
    assert CreditAccount.objects.get(user=user).reserved == 0
    assert sum(sent) < 8 * 1024 * 1024  # we hung up long before the end


# --- Callback URLs ----------------------------------------------------------------------------

TRANSLATED_INTERNAL = [
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::7f00:1]:8080/",  # NAT64 of 127.0.0.1
    "http://[::a9fe:a9fe]/",  # IPv4-compatible ::169.254.169.254
    "http://[::7f00:1]/",
    "http://[fec0::1]/",  # site-local
    "http://[::ffff:0:a00:1]/",  # IPv4-translated ::ffff:0:10.0.0.1
]


@pytest.mark.parametrize(
    "url",
    [*TRANSLATED_INTERNAL, "http://[2002:a9fe:a9fe::1]/"],  # and 6to4 of 169.254.169.254
)
def test_translated_ipv6_callback_urls_are_refused_at_accept(url, settings):
    settings.PRIVATE_URLS_ALLOWED = False
    with pytest.raises(ValidationFailed) as refused:
        validate_params(params={**REQUEST_BODY, "callback_url": url})
    assert "public" in refused.value.fields["callback_url"][0]
    with pytest.raises(callbacks.CallbackUrlRefused):
        callbacks.check_callback_url(url, resolve=True)


@pytest.mark.parametrize("url", TRANSLATED_INTERNAL)
def test_translated_ipv6_callback_urls_are_refused_at_send(url, user, settings):
    settings.PRIVATE_URLS_ALLOWED = False
    generation = GenerationFactory(
        owner=user, status="failed", error_code="content_policy", callback_url=url
    )
    assert callbacks.deliver_callback(str(generation.pk), 1) == "gave_up"
    attempt = CallbackAttempt.objects.get(generation=generation)
    assert "public" in attempt.error and attempt.status_code is None
