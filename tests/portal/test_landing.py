"""First visit (issue 14): anonymous `/` is a landing page with the sample video, the price
list from the active pricing rules and the way to credits; the studio explains credits
in one line until the first video."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from generations.models import PricingRule
from generations.simulated import SAMPLE_VIDEO
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


def test_anonymous_home_is_the_landing_page_not_a_login_redirect(client):
    response = client.get(reverse("studio"))
    assert response.status_code == 200
    assert response.templates[0].name == "landing.html"
    page = html(response)
    assert "Turn a picture into a video." in page
    assert f'<video src="{reverse("landing-sample")}" autoplay muted loop playsinline' in page
    assert f'href="{reverse("signup")}" data-testid="landing-signup"' in page
    assert f'href="{reverse("login")}" data-testid="landing-login"' in page
    assert "How to get credits" in page
    assert 'name="prompt"' not in page  # no studio form for a visitor


def test_landing_prices_come_from_the_active_pricing_rules(client):
    page = html(client.get(reverse("studio")))
    example = re.sub(r"\s+", " ", page.split('data-testid="price-example">')[1].split("</p>")[0])
    assert example == (
        "For example, an 8-second 720p video with audio: <strong>320 credits</strong>."
    )
    table = page.split('data-testid="price-table"')[1].split("</table>")[0]
    rows = re.findall(r'<th scope="row">([^<]+)</th>\s*((?:<td class="num">[^<]+</td>)+)', table)
    cells = {label: re.findall(r">([\d,]+) credits<", tds) for label, tds in rows}
    # 4, 6, 8 seconds; 40 credits/s with audio, 20 without, at 720p and 1080p (4K inactive).
    assert cells == {
        "720p, with audio": ["160", "240", "320"],
        "720p, no audio": ["80", "120", "160"],
        "1080p, with audio": ["160", "240", "320"],
        "1080p, no audio": ["80", "120", "160"],
    }

    # A staff change in the admin shows at once: a new rate, and 4K switched on.
    PricingRule.objects.filter(resolution="720p", generate_audio=True, active=True).update(
        credits_per_second=50
    )
    PricingRule.objects.filter(resolution="4k").update(active=True)
    page = html(client.get(reverse("studio")))
    assert "an 8-second 720p video with audio: <strong>400 credits</strong>" in page
    assert '<th scope="row">4k, with audio</th>' in page
    assert '<td class="num">480 credits</td>' in page  # 8 s x 60 credits/s


def test_landing_with_no_active_price_still_answers(client):
    PricingRule.objects.update(active=False)
    response = client.get(reverse("studio"))
    assert response.status_code == 200
    assert "Prices are being updated" in html(response)
    assert 'data-testid="price-example"' not in html(response)


def test_landing_names_the_signup_credits_when_there_are_some(client, settings):
    settings.SIGNUP_CREDITS = 0
    assert "free credits" not in html(client.get(reverse("studio")))
    settings.SIGNUP_CREDITS = 500
    assert "you get <strong>500 free credits</strong>" in html(client.get(reverse("studio")))


def test_an_anonymous_post_to_home_goes_to_login(client):
    response = client.post(reverse("studio"), {"prompt": "x"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


def test_logged_in_home_stays_the_studio(client, user):
    client.force_login(user)
    response = client.get(reverse("studio"))
    assert response.templates[0].name == "generations/generation_form.html"
    assert 'id="create-form"' in html(response)


def test_sample_video_is_served_with_byte_ranges_to_anyone(client):
    data = SAMPLE_VIDEO.read_bytes()
    response = client.get(reverse("landing-sample"))
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert b"".join(response.streaming_content) == data
    part = client.get(reverse("landing-sample"), HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert b"".join(part.streaming_content) == data[100:200]
    beyond = client.get(reverse("landing-sample"), HTTP_RANGE=f"bytes={len(data) + 10}-")
    assert beyond.status_code == 416
    head = client.head(reverse("landing-sample"))
    assert (head.status_code, head["Content-Length"]) == (200, str(len(data)))


# --- The studio explains credits the first time -----------------------------------------------


def test_studio_explains_credits_until_the_first_video(client, user):
    client.force_login(user)
    page = html(client.get(reverse("studio")))
    line = page.split('data-testid="credits-explainer">')[1].split("</p>")[0]
    assert "<strong>1,000</strong> credits available" in line
    assert "your balance minus what is held for videos in progress" in line
    assert f'<a href="{reverse("credits")}">Buy credits</a>' in line

    GenerationFactory(owner=user)
    assert 'data-testid="credits-explainer"' not in html(client.get(reverse("studio")))
