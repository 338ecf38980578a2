"""Our own absolute URLs (`veoproject.site_urls`): PUBLIC_BASE_URL and a path, with one
fallback for each kind of link, and a forged Host header tried on each kind. It never
reaches an email, a Stripe return URL or a URL fal is given; an API answer takes a host
only from ALLOWED_HOSTS, and none at all once the site's address is set."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.checks import run_checks
from django.core.exceptions import DisallowedHost
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import CreditPack, Purchase
from generations import services
from generations.callbacks.delivery import payload
from generations.models import Generation
from tests.factories import REQUEST_BODY, UserFactory, image_upload
from tests.fakestripe import fixtures as fakestripe_fixtures
from tests.fakestripe.forms import decode
from veoproject import site_urls

pytestmark = pytest.mark.django_db

fake_stripe = fakestripe_fixtures.fake_stripe  # requested by name below

PUBLIC = "https://veo.example.com"
EVIL = "evil.example"
GENERATIONS = "/api/v1/generations/"


@pytest.fixture
def lax_hosts(settings):
    """A site that answers to any Host header (ALLOWED_HOSTS = *): the forged host gets
    past Django's first line, so what the links are made of is all that stands."""
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture
def at_commit(django_capture_on_commit_callbacks):
    """Run what the block enqueues at commit (tasks run inline: django-q2 sync mode)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["", "credits/", f"{EVIL}/x", f"//{EVIL}/x", f"https://{EVIL}/x", f"\\\\{EVIL}/x"]
)
@pytest.mark.parametrize("public", ["", PUBLIC])
def test_only_a_path_on_our_site_is_made_absolute(settings, path, public):
    settings.PUBLIC_BASE_URL = public
    request = RequestFactory().get("/")
    for make in (site_urls.for_fal, site_urls.for_email, site_urls.for_client):
        with pytest.raises(ValueError, match="not a path on this site"):
            make(path)
    with pytest.raises(ValueError, match="not a path on this site"):
        site_urls.for_client(path, request)


def test_with_a_public_address_every_kind_of_link_starts_with_it(settings, lax_hosts):
    settings.PUBLIC_BASE_URL = PUBLIC
    forged = RequestFactory().get("/", HTTP_HOST=EVIL)

    assert site_urls.is_public()
    assert (
        site_urls.for_fal("/webhooks/fal/?generation=1") == f"{PUBLIC}/webhooks/fal/?generation=1"
    )
    assert site_urls.for_email("/credits/") == f"{PUBLIC}/credits/"
    assert site_urls.for_client("/media/x", forged) == f"{PUBLIC}/media/x"
    assert site_urls.for_client("/media/x") == f"{PUBLIC}/media/x"


def test_without_a_public_address_each_kind_has_its_own_fallback(settings):
    settings.PUBLIC_BASE_URL = ""
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8000")

    assert not site_urls.is_public()
    assert site_urls.for_fal("/webhooks/fal/") is None  # fal is polled instead
    assert site_urls.for_email("/credits/") == "http://localhost:8000/credits/"
    assert site_urls.for_client("/media/x", request) == "http://127.0.0.1:8000/media/x"
    assert site_urls.for_client("/media/x") == "/media/x"  # a callback, built in a worker


def test_without_a_public_address_a_client_link_takes_its_host_only_from_allowed_hosts(
    settings,
):
    settings.PUBLIC_BASE_URL = ""
    forged = RequestFactory().get("/", HTTP_HOST=EVIL)

    with pytest.raises(DisallowedHost):
        site_urls.for_client("/media/x", forged)


# --- emails ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("public", "site"), [("", "http://localhost:8000"), (PUBLIC, PUBLIC)])
def test_a_forged_host_never_reaches_an_email(
    settings, lax_hosts, bearer_client, at_commit, public, site
):
    settings.PUBLIC_BASE_URL = public
    owner = UserFactory(credits=350)  # one video (320) leaves 30: below the threshold

    with at_commit():
        response = bearer_client(owner).post(
            GENERATIONS, REQUEST_BODY, format="json", HTTP_HOST=EVIL
        )
    assert response.status_code == 201, response.content

    [message] = [m for m in mail.outbox if "running low" in m.subject]
    html = message.alternatives[0][0]
    assert f"{site}/credits/" in message.body
    assert EVIL not in message.body + html + str(message.extra_headers)


def test_a_password_reset_with_a_forged_host_is_refused_and_sends_nothing(client):
    # Without a public address allauth makes the reset link from the request: ALLOWED_HOSTS
    # is what stands (with one, see tests/accounts/test_reset_link_host.py).
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)

    refused = client.post(reverse("password_reset"), {"email": user.email}, HTTP_HOST=EVIL)
    assert refused.status_code == 400
    assert mail.outbox == []

    client.post(reverse("password_reset"), {"email": user.email})
    [message] = mail.outbox
    assert "/accounts/password/reset/key/" in message.body


# --- Stripe's return URLs -------------------------------------------------------------------


@pytest.fixture
def buyer(client):
    user = UserFactory(username="buyer")
    client.force_login(user)
    return user


@pytest.fixture
def pack(db) -> CreditPack:
    return CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000)


def return_urls(fake) -> tuple[str, str]:
    [session] = [r for r in fake.requests if r["method"] == "POST"]
    params = decode(session["body"])
    return params["success_url"], params["cancel_url"]


def test_a_checkout_with_a_forged_host_is_refused_before_stripe(client, buyer, pack, fake_stripe):
    response = client.post("/credits/buy/", {"pack": pack.pk}, HTTP_HOST=EVIL)

    assert response.status_code == 400
    assert fake_stripe.requests == []
    assert not Purchase.objects.exists()


def test_stripe_return_urls_use_the_public_address_whatever_the_host(
    client, buyer, pack, fake_stripe, settings, lax_hosts
):
    settings.PUBLIC_BASE_URL = PUBLIC

    client.post("/credits/buy/", {"pack": pack.pk}, HTTP_HOST=EVIL)

    purchase = Purchase.objects.get()
    assert return_urls(fake_stripe) == (
        f"{PUBLIC}/credits/purchases/{purchase.pk}/thanks/",
        f"{PUBLIC}/credits/purchases/{purchase.pk}/canceled/",
    )


def test_without_a_public_address_stripe_returns_to_the_allowed_host_asked(
    client, buyer, pack, fake_stripe, settings
):
    settings.PUBLIC_BASE_URL = ""

    client.post("/credits/buy/", {"pack": pack.pk}, HTTP_HOST="127.0.0.1:8000")

    success, cancel = return_urls(fake_stripe)
    assert success.startswith("http://127.0.0.1:8000/credits/purchases/")
    assert cancel.startswith("http://127.0.0.1:8000/credits/purchases/")


# --- URLs fal is given ----------------------------------------------------------------------


@pytest.fixture
def fal(real_fal):
    """The real gateway against the fake fal, whose storage refuses uploads: an uploaded
    image can reach fal only through our signed view, on the public address."""
    fake = real_fal(queue_seconds=60)
    fake.configure(faults={"upload": {"500": 1.0}})
    return fake


def create_upload_with_forged_host(user, bearer_client, at_commit) -> Generation:
    body = {**REQUEST_BODY, "image_url": "", "image": image_upload()}
    with at_commit():
        response = bearer_client(user).post(GENERATIONS, body, format="multipart", HTTP_HOST=EVIL)
    assert response.status_code == 201, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    if generation.status == Generation.Status.PENDING:  # the submit waits for dispatch
        services.submit(generation_id=generation.pk)
        generation.refresh_from_db()
    return generation


def test_the_urls_fal_is_given_use_the_public_address_never_the_host(
    user, fal, settings, lax_hosts, bearer_client, at_commit
):
    settings.PUBLIC_BASE_URL = PUBLIC

    generation = create_upload_with_forged_host(user, bearer_client, at_commit)

    [submit] = fal.requests("submit")
    webhook = urlsplit(submit.query["fal_webhook"])
    assert (webhook.scheme, webhook.netloc, webhook.path) == (
        "https",
        "veo.example.com",
        "/webhooks/fal/",
    )
    assert parse_qs(webhook.query)["generation"] == [str(generation.pk)]
    assert submit.body["image_url"].startswith(f"{PUBLIC}/media/signed/")
    assert EVIL not in str(submit.query) + str(submit.body)


def test_without_a_public_address_fal_is_given_no_url_of_ours(
    user, fal, settings, lax_hosts, bearer_client, at_commit
):
    settings.PUBLIC_BASE_URL = ""

    generation = create_upload_with_forged_host(user, bearer_client, at_commit)

    # No webhook to give and no signed image to offer: the submit waits for fal's storage.
    assert fal.requests("submit") == []
    assert generation.status == Generation.Status.PENDING
    assert services.fal_webhook_url(generation) is None


# --- API answers and callbacks --------------------------------------------------------------


@pytest.fixture
def uploaded(user) -> Generation:
    return services.accept(
        user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload()
    ).generation


def image_path(generation: Generation) -> str:
    return reverse("generation-image", args=[generation.pk])


def test_an_api_request_with_a_forged_host_is_refused_in_our_error_shape(api, uploaded, client):
    # handler400 (veoproject.errors.bad_request) answers DisallowedHost under /api/ and
    # /webhooks/ like any other 400; with DEBUG on, Django shows its debug page instead.
    refused = [
        api.get(f"{GENERATIONS}{uploaded.pk}/", HTTP_HOST=EVIL),
        api.post(GENERATIONS, REQUEST_BODY, format="json", HTTP_HOST=EVIL),
        client.post(reverse("fal-webhook"), b"{}", content_type="application/json", HTTP_HOST=EVIL),
    ]

    for response in refused:
        assert response.status_code == 400
        assert response.json() == {
            "error": {"code": "bad_request", "message": "Bad request.", "fields": {}}
        }
        assert EVIL not in response.content.decode()
    assert Generation.objects.count() == 1


def test_once_the_site_has_a_public_address_api_answers_use_it_like_callbacks(
    api, uploaded, settings, lax_hosts
):
    # Before, the answer took the Host header when PUBLIC_BASE_URL was set too: a client
    # got links to whatever host it named, and a different JSON from the callback's.
    settings.PUBLIC_BASE_URL = PUBLIC

    answer = api.get(f"{GENERATIONS}{uploaded.pk}/", HTTP_HOST=EVIL).json()

    assert answer["image_url"] == f"{PUBLIC}{image_path(uploaded)}"
    assert answer["image_url"] == payload_of(uploaded)["image_url"]


def test_without_a_public_address_api_answers_use_the_allowed_host_and_callbacks_a_path(
    api, uploaded, settings
):
    settings.PUBLIC_BASE_URL = ""

    answer = api.get(f"{GENERATIONS}{uploaded.pk}/", HTTP_HOST="127.0.0.1:8000").json()

    assert answer["image_url"] == f"http://127.0.0.1:8000{image_path(uploaded)}"
    assert payload_of(uploaded)["image_url"] == image_path(uploaded)


def payload_of(generation: Generation) -> dict:
    """The generation JSON POSTed to its callback (built in a worker, with no request)."""
    return json.loads(payload(generation))


# --- the deployment check -------------------------------------------------------------------


def warned(settings, *, debug: bool, allowed_hosts: list[str]) -> bool:
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = allowed_hosts
    return "veoproject.W003" in {message.id for message in run_checks()}


def test_a_deployment_that_accepts_any_host_is_warned(settings):
    assert warned(settings, debug=False, allowed_hosts=["veo.example.com", "*"])
    assert not warned(settings, debug=False, allowed_hosts=["veo.example.com"])
    # A leading dot admits only subdomains of a domain the operator named.
    assert not warned(settings, debug=False, allowed_hosts=[".example.com"])
    assert not warned(settings, debug=True, allowed_hosts=["*"])  # development stays quiet
