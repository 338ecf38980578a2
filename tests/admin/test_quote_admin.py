"""The quote admin: what a user was quoted, whether the quote paid and for which generation
(`Generation.quote`, saved by accept); read-only for everybody, visible only with the view
permission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from generations import quotes, services
from generations.models import Generation, Quote
from tests.admin.actions import changelist
from tests.factories import REQUEST_BODY, UserFactory

pytestmark = pytest.mark.django_db

FAST = "fal-ai/veo3.1/fast/image-to-video"


def issue(user: User, **changes) -> Quote:
    return quotes.issue(user=user, params={**REQUEST_BODY, **changes}).record


def accept(user: User, quote: Quote | None = None, **changes) -> Generation:
    extra = {"quote_id": str(quote.pk)} if quote else {}
    return services.accept(user=user, params={**REQUEST_BODY, **changes, **extra}).generation


def change_page(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def listed(response) -> list[Quote]:
    return list(response.context["cl"].result_list)


# --- List and detail ------------------------------------------------------------------------


def test_list_shows_owner_model_options_credits_and_the_generation_a_quote_paid(
    admin_client_for, superuser, user
):
    open_quote = issue(user, generate_audio=False, resolution="720p", duration="4s")
    used = issue(user)
    generation = accept(user, used)

    response = admin_client_for(superuser).get(changelist(Quote))

    assert response.status_code == 200
    rows = {quote.pk: quote for quote in listed(response)}
    assert rows[used.pk].paid_generation_id == generation.pk
    assert rows[open_quote.pk].paid_generation_id is None
    body = response.content.decode()
    assert user.username in body
    assert django_settings.FAL_ENDPOINT in body
    assert "8s · 1080p · audio" in body and "4s · 720p · silent" in body
    assert f'<td class="field-cost_credits">{used.cost_credits}</td>' in body
    assert change_page(generation) in body


def test_detail_shows_the_price_breakdown_state_and_the_generation(
    admin_client_for, superuser, user
):
    quote = issue(user)
    generation = accept(user, quote)

    response = admin_client_for(superuser).get(change_page(quote))

    assert response.status_code == 200
    body = response.content.decode()
    assert str(quote.pk) in body
    assert f"Model: {django_settings.FAL_ENDPOINT} · 8 s x 20 = 160" in body
    assert "Resolution: 1080p · 8 s x 0 = 0" in body
    assert "Audio: with audio · 8 s x 20 = 160" in body
    assert change_page(generation) in body
    assert ">used<" in body
    assert 'name="_save"' not in body


def test_a_generation_links_the_quote_that_paid_it_and_only_that_one(
    admin_client_for, superuser, user
):
    quote = issue(user)
    paid = accept(user, quote)
    unquoted = accept(user)  # a moment later, same options, without a quote
    client = admin_client_for(superuser)

    paid_page = client.get(change_page(paid)).content.decode()
    unquoted_page = client.get(change_page(unquoted)).content.decode()

    assert change_page(quote) in paid_page
    assert f"{quote.cost_credits} credits quoted" in paid_page
    assert change_page(quote) not in unquoted_page
    assert "None: charged the price when accepted" in unquoted_page
    listing = client.get(changelist(Quote))
    assert [q.paid_generation_id for q in listed(listing)] == [paid.pk]


def test_a_quote_that_did_not_pay_links_no_generation(admin_client_for, superuser, user):
    quote = issue(user)
    generation = accept(user)  # the price now, not the quote

    client = admin_client_for(superuser)
    [row] = listed(client.get(changelist(Quote)))

    assert row.paid_generation_id is None
    assert change_page(quote) not in client.get(change_page(generation)).content.decode()


def test_two_quotes_used_at_the_same_moment_link_the_generations_they_paid(
    admin_client_for, superuser, user, settings
):
    """Two accepts of one user in the same milliseconds (as on PostgreSQL, whose clock
    does not serialise them): each quote links the generation it paid, not its neighbour."""
    settings.MAX_IN_FLIGHT_PER_USER = 0
    long_quote, short_quote = issue(user), issue(user, duration="4s")
    long_video = accept(user, long_quote)
    short_video = accept(user, short_quote, duration="4s")
    moment = timezone.now()
    Quote.objects.filter(owner=user).update(used_at=moment)
    Generation.objects.filter(owner=user).update(created_at=moment)
    client = admin_client_for(superuser)

    rows = {quote.pk: quote for quote in listed(client.get(changelist(Quote)))}
    long_page = client.get(change_page(long_video)).content.decode()
    short_page = client.get(change_page(short_video)).content.decode()

    assert rows[long_quote.pk].paid_generation_id == long_video.pk
    assert rows[short_quote.pk].paid_generation_id == short_video.pk
    assert change_page(long_quote) in long_page and change_page(short_quote) not in long_page
    assert change_page(short_quote) in short_page and change_page(long_quote) not in short_page
    assert "320 credits quoted" in long_page and "160 credits quoted" in short_page
    assert change_page(short_video) in client.get(change_page(short_quote)).content.decode()


def test_a_used_quote_outlives_the_purge_and_stays_linked(admin_client_for, superuser, user):
    used, unused = issue(user), issue(user)
    generation = accept(user, used)
    long_ago = timezone.now() - quotes.PURGE_AFTER - timedelta(days=30)
    Quote.objects.update(expires_at=long_ago)

    assert quotes.purge_expired() == 1

    client = admin_client_for(superuser)
    assert [q.pk for q in listed(client.get(changelist(Quote)))] == [used.pk]
    assert not Quote.objects.filter(pk=unused.pk).exists()
    assert change_page(used) in client.get(change_page(generation)).content.decode()
    assert change_page(generation) in client.get(change_page(used)).content.decode()


def test_list_queries_do_not_grow_with_the_number_of_quotes(
    admin_client_for, superuser, settings, django_assert_max_num_queries
):
    settings.MAX_IN_FLIGHT_PER_USER = 0  # no cap: many generations in flight
    owners = [UserFactory(credits=10_000), UserFactory(credits=10_000)]
    accept(owners[0], issue(owners[0]))
    issue(owners[1], model=FAST)
    client = admin_client_for(superuser)

    # The session, the user, their second factor and credits, the count, the rows (each with
    # the generation it paid, in the same query), the models to filter by.
    with django_assert_max_num_queries(7):
        few = client.get(changelist(Quote))
    for owner in owners * 10:
        accept(owner, issue(owner))
    with django_assert_max_num_queries(7):
        many = client.get(changelist(Quote))

    assert len(listed(few)) == 2 and len(listed(many)) == 22
    assert sum(q.paid_generation_id is not None for q in listed(many)) == 21


# --- Search and filters ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["email", "username"])
def test_search_by_the_owners_email_or_username(admin_client_for, superuser, user, field):
    theirs = issue(user)
    issue(UserFactory(credits=1000))

    response = admin_client_for(superuser).get(changelist(Quote), {"q": getattr(user, field)})

    assert [q.pk for q in listed(response)] == [theirs.pk]


def test_search_by_quote_id_and_by_nonsense(admin_client_for, superuser, user):
    wanted = issue(user)
    issue(user)
    client = admin_client_for(superuser)

    by_id = client.get(changelist(Quote), {"q": f" {wanted.pk} "})
    nonsense = client.get(changelist(Quote), {"q": "' OR 1=1 --"})

    assert [q.pk for q in listed(by_id)] == [wanted.pk]
    assert nonsense.status_code == 200 and listed(nonsense) == []


def test_filters_by_model_and_by_open_used_or_expired(admin_client_for, superuser, user):
    open_quote = issue(user)
    used = issue(user)
    accept(user, used)
    expired = issue(user, model=FAST)
    Quote.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = admin_client_for(superuser)

    def shown(**params) -> set:
        response = client.get(changelist(Quote), params)
        assert response.status_code == 200
        return {q.pk for q in listed(response)}

    assert shown(state="open") == {open_quote.pk}
    assert shown(state="used") == {used.pk}
    assert shown(state="expired") == {expired.pk}
    assert shown(model=FAST) == {expired.pk}
    assert shown(model=django_settings.FAL_ENDPOINT) == {open_quote.pk, used.pk}
    assert shown(state="nonsense") == {open_quote.pk, used.pk, expired.pk}


# --- Nobody edits quotes; only staff allowed to view them see them --------------------------


def test_quotes_cannot_be_added_changed_or_deleted(admin_client_for, superuser, user):
    quote = issue(user)
    client = admin_client_for(superuser)

    assert client.get(reverse("admin:generations_quote_add")).status_code == 403
    assert client.get(reverse("admin:generations_quote_delete", args=[quote.pk])).status_code == 403
    assert client.post(change_page(quote), {"cost_credits": 1}).status_code == 403
    deleted = client.post(
        changelist(Quote),
        {"action": "delete_selected", "_selected_action": [str(quote.pk)], "post": "yes"},
    )
    assert deleted.status_code in (200, 302)
    assert Quote.objects.get(pk=quote.pk).cost_credits == 320


def test_staff_without_the_view_permission_do_not_see_quotes(admin_client_for, moderator, user):
    quote = issue(user)
    bare_staff = UserFactory(is_staff=True)

    for member in (bare_staff, moderator):
        client = admin_client_for(member)
        assert client.get(changelist(Quote)).status_code == 403
        assert client.get(change_page(quote)).status_code == 403
        index = client.get(reverse("admin:index")).content.decode()
        assert changelist(Quote) not in index


def test_staff_with_the_view_permission_see_quotes_and_cannot_change_them(admin_client_for, user):
    quote = issue(user)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_quote"))
    client = admin_client_for(viewer)

    assert [q.pk for q in listed(client.get(changelist(Quote)))] == [quote.pk]
    page = client.get(change_page(quote))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change_page(quote), {"cost_credits": 1}).status_code == 403


# --- German ---------------------------------------------------------------------------------


@pytest.fixture
def german_catalogue(settings, compiled_locale) -> None:
    """The committed German catalogue, compiled once for the session (tests/conftest.py)."""
    settings.LOCALE_PATHS = [compiled_locale]


def test_german_staff_read_the_quote_pages_in_german(
    admin_client_for, superuser, user, german_catalogue
):
    quote = issue(user)
    generation = accept(user, quote)
    open_quote = issue(user, generate_audio=False)
    client = admin_client_for(superuser)

    listing = client.get(changelist(Quote), HTTP_ACCEPT_LANGUAGE="de").content.decode().lower()
    detail = client.get(change_page(open_quote), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    generation_page = client.get(change_page(generation), HTTP_ACCEPT_LANGUAGE="de")

    assert "bezahlte generierung" in listing and "verwendet" in listing
    assert "ohne audio" in listing and "silent" not in listing
    assert "offen" in detail and "Preisaufstellung" in detail
    assert f"{quote.cost_credits} Credits angeboten" in generation_page.content.decode()
