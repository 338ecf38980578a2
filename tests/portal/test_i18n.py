"""Every page in two languages (issue 14): English and German, chosen by the browser
(Accept-Language), the switcher (stored on the user) or the user's stored language at
login; emails in the recipient's language; numbers grouped as the language writes them;
and a German catalogue that covers every string marked in the source.

The German catalogue is compiled for these tests from locale/de/LC_MESSAGES/django.po into
a temporary folder (`make run` / `make test` compile it in place with compilemessages).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse

from accounts import ledger
from accounts.models import User
from generations.models import Generation
from generations.services import fail
from tests.factories import GenerationFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(django_settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "de" / "LC_MESSAGES" / "django.po"
PASSWORD = "correct horse battery"
GETTEXT_TOOLS = ("msgfmt", "msgattrib", "msgmerge", "xgettext")
needs_gettext = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in GETTEXT_TOOLS),
    reason="GNU gettext (msgfmt, xgettext, msgmerge, msgattrib) is not installed: "
    "apt-get install gettext",
)


@pytest.fixture(autouse=True)
def _german_catalogue(compiled_locale, settings):
    """Pages read the compiled catalogue (setting LOCALE_PATHS also clears Django's cache
    of loaded catalogues)."""
    settings.LOCALE_PATHS = [compiled_locale]


def text_of(response) -> str:
    """What a person reads: the page's text without tags, scripts and extra space."""
    page = response.content.decode()
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def german_user(**fields) -> User:
    user = UserFactory(credits=12_345, **fields)
    User.objects.filter(pk=user.pk).update(language="de")
    user.refresh_from_db()
    return user


# --- Pages ---------------------------------------------------------------------------------


def test_anonymous_visitor_gets_the_landing_page_in_the_browsers_language(client):
    response = client.get(reverse("studio"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5")

    page = text_of(response)
    assert response["Content-Language"] == "de"
    assert '<html lang="de">' in response.content.decode()
    for german in ("Machen Sie aus einem Bild ein Video.", "Preise", "So erhalten Sie Credits"):
        assert german in page
    assert (
        "Zum Beispiel ein 8 Sekunden langes Video in 720p mit Audio: <strong>320 Credits</strong>."
        in response.content.decode()
    )
    for english in ("Turn a picture into a video", "How to get credits", "Log in", "Sign up"):
        assert english not in page


def test_english_stays_the_default(client):
    response = client.get(reverse("studio"), HTTP_ACCEPT_LANGUAGE="fr")

    page = text_of(response)
    assert response["Content-Language"] == "en"
    assert "Turn a picture into a video." in page
    assert "Machen Sie" not in page


def test_studio_in_german_for_a_user_who_chose_german(client):
    client.force_login(german_user())

    page = text_of(client.get(reverse("studio"), HTTP_ACCEPT_LANGUAGE="en"))

    for german in ("Ein Video erstellen", "Tipps für einen guten Prompt", "Seitenverhältnis"):
        assert german in page
    assert "Video erzeugen" in page  # the price box's button
    for english in ("Create a video", "Tips for a good prompt", "Aspect ratio", "Generate video"):
        assert english not in page


def test_credits_page_in_german_groups_numbers_the_german_way(client):
    user = german_user()
    client.force_login(user)

    page = text_of(client.get(reverse("credits")))

    for german in ("Verbrauchte Credits pro Tag", "Kontostand", "Verlauf", "Gutschrift"):
        assert german in page
    assert "12.345" in page and "12,345" not in page
    for english in ("Credits spent per day", "History", "Balance after"):
        assert english not in page


def test_the_same_credits_page_in_english_groups_with_commas(client, user):
    ledger.grant(user=user, amount=11_345, reason="more")
    client.force_login(user)

    page = text_of(client.get(reverse("credits")))

    assert "12,345" in page and "12.345" not in page
    assert "Credits spent per day" in page


def test_failed_card_reads_in_german(client):
    user = german_user()
    generation = GenerationFactory(owner=user, status="running", fal_request_id="req-1")
    ledger.hold(generation=generation)
    fail(generation_id=generation.pk, code="content_policy", message="refused", raw="refused")
    client.force_login(user)

    page = text_of(client.get(reverse("generation-list")))

    assert "Der Prompt oder das Bild wurde von den Inhaltsregeln abgelehnt." in page
    assert "Es wurde nichts berechnet: 320 Credits zurückgegeben." in page
    assert "Erneut versuchen" in page and "Fehlgeschlagen" in page
    for english in ("refused by the content rules", "Nothing was charged", "Try again", "Failed"):
        assert english not in page


def test_api_errors_keep_their_codes_and_speak_the_clients_language(api):
    response = api.post(
        "/api/v1/generations/", {"prompt": " "}, format="json", HTTP_ACCEPT_LANGUAGE="de"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"] == "Einige Felder sind ungültig."
    assert error["fields"]["prompt"] == ["Beschreiben Sie das gewünschte Video."]


# --- Choosing the language -------------------------------------------------------------------


def test_switcher_sets_the_language_and_stores_it_on_the_user(client, user):
    client.force_login(user)

    response = client.post(reverse("set_language"), {"language": "de", "next": reverse("credits")})

    assert response.status_code == 302
    assert response.url == reverse("credits")
    assert response.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "de"
    user.refresh_from_db()
    assert user.language == "de"
    assert "Verbrauchte Credits pro Tag" in text_of(client.get(reverse("credits")))


def test_switcher_is_on_every_page_and_works_for_visitors(client):
    page = client.get(reverse("studio")).content.decode()
    assert f'action="{reverse("set_language")}"' in page
    assert '<option value="de" lang="de">Deutsch</option>' in page

    response = client.post(reverse("set_language"), {"language": "de", "next": "/"})

    assert response.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "de"
    assert "Machen Sie aus einem Bild ein Video." in text_of(client.get("/"))


def test_switcher_ignores_a_language_the_site_does_not_offer(client, user):
    client.force_login(user)

    client.post(reverse("set_language"), {"language": "xx", "next": "/"})

    user.refresh_from_db()
    assert user.language == ""


def test_stored_language_becomes_the_active_one_at_login(client):
    user = german_user()
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)

    response = client.post(
        reverse("login"),
        {"login": user.username, "password": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 302
    assert response.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "de"
    page = text_of(client.get(reverse("studio"), HTTP_ACCEPT_LANGUAGE="en"))
    assert "Ein Video erstellen" in page
    # And it stays German after logging out (the cookie follows the user's choice).
    client.post(reverse("logout"))
    assert "Machen Sie aus einem Bild ein Video." in text_of(
        client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    )


# --- Emails ---------------------------------------------------------------------------------


def test_video_email_to_a_german_user_is_german(django_capture_on_commit_callbacks):
    user = german_user()
    generation = GenerationFactory(owner=user, status="running", fal_request_id="req-2")
    ledger.hold(generation=generation)

    with django_capture_on_commit_callbacks(execute=True):
        fail(generation_id=generation.pk, code="timeout", message="late", raw="late")

    (message,) = mail.outbox
    assert message.subject == "Ihr Video konnte nicht erstellt werden"
    assert "Die Erstellung des Videos hat zu lange gedauert." in message.body
    assert "Es wurde nichts berechnet: 320 Credits zurückgegeben." in message.body
    html, _ = message.alternatives[0]
    assert '<html lang="de">' in html and "Erneut versuchen" in html
    assert "could not be made" not in message.body + html


def test_video_email_to_an_english_user_stays_english(user, django_capture_on_commit_callbacks):
    generation = GenerationFactory(owner=user, status="running", fal_request_id="req-3")
    ledger.hold(generation=generation)

    with django_capture_on_commit_callbacks(execute=True):
        fail(generation_id=generation.pk, code="timeout", message="late", raw="late")

    (message,) = mail.outbox
    assert message.subject == "Your video could not be made"
    assert Generation.objects.get(pk=generation.pk).is_failed


def test_account_email_follows_the_users_language_not_the_page(client):
    user = german_user()

    client.post(reverse("account_reset_password"), {"email": user.email}, HTTP_ACCEPT_LANGUAGE="en")

    (message,) = mail.outbox
    assert message.subject == "Setzen Sie Ihr Veo-Studio-Passwort zurück"
    assert "Jemand hat angefordert, das Passwort" in message.body


# --- Templates --------------------------------------------------------------------------------

# Text a portal template may show as it is, in any language: the product's name, and how an
# API token begins ("veo_<prefix>_…").
UNTRANSLATED_ALLOWED = re.compile(r"Veo Studio|veo_ _…")
PEOPLE_READ = r"alt|title|aria-label|placeholder|data-confirm|data-busy-label"


def unmarked_text(template: str) -> list[str]:
    """Words in a template outside {% translate %} / {% blocktranslate %}: its text nodes
    and the attributes people read, with comments, scripts, styles and SVG left out."""
    found = []
    template = re.sub(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", " ", template, flags=re.S)
    template = re.sub(
        r"\{%\s*blocktranslate.*?\{%\s*endblocktranslate\s*%\}", " ", template, flags=re.S
    )
    template = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", template, flags=re.S)
    template = re.sub(r"\{#.*?#\}", " ", template, flags=re.S)
    for match in re.finditer(rf'\b(?:{PEOPLE_READ})="([^"]*)"', template):
        if re.search(r"[A-Za-z]{2}", re.sub(r"\{[{%].*?[%}]\}", " ", match.group(1))):
            found.append(match.group(0))
    text = re.sub(r"<[^>]*>", " ", re.sub(r"\{%.*?%\}|\{\{.*?\}\}", " ", template, flags=re.S))
    for line in text.splitlines():
        words = UNTRANSLATED_ALLOWED.sub(" ", line).strip()
        if re.search(r"[A-Za-z]{2}", words):
            found.append(words)
    return found


def test_portal_templates_have_no_unmarked_text():
    """Every word a portal template shows goes through the catalogue (the admin's and the
    API docs' templates are Django's and drf-spectacular's own business)."""
    templates = ROOT / "templates"
    unmarked = {
        str(path.relative_to(templates)): words
        for path in sorted(templates.rglob("*"))
        if path.suffix in (".html", ".txt")
        and path.relative_to(templates).parts[0] not in ("admin", "drf_spectacular")
        and (words := unmarked_text(path.read_text()))
    }
    assert unmarked == {}


def test_the_template_check_sees_unmarked_text():
    template = (
        '{% load i18n %}<h1>{% translate "Prices" %}</h1><p>Hello there</p>'
        '<img alt="A picture"><a title="{% translate \'Home\' %}">{{ name }}</a>'
        "{% blocktranslate %}Hi {{ name }}{% endblocktranslate %}"
    )
    assert unmarked_text(template) == ['alt="A picture"', "Hello there"]


# --- The catalogue ---------------------------------------------------------------------------

# What `makemessages` reads (README "Languages"): the apps and the portal's templates.
SOURCES = ("accounts", "generations", "notifications", "veoproject", "templates", "locale")
NOT_PORTAL = ("templates/admin", "templates/drf_spectacular")


def _extracted_catalogue(workdir: Path) -> Path:
    """django.po as `makemessages -l de` makes it from the source now (merged with the
    committed translations), made in a copy of the project: the source tree is untouched."""
    for name in SOURCES:
        shutil.copytree(
            ROOT / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo")
        )
    for name in NOT_PORTAL:
        shutil.rmtree(workdir / name, ignore_errors=True)
    shutil.copy(ROOT / "manage.py", workdir / "manage.py")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "de", "--no-location"],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1", "HOME": str(workdir)},
        check=True,
        capture_output=True,
    )
    return workdir / "locale" / "de" / "LC_MESSAGES" / "django.po"


def _entries(po: Path, *selection: str) -> str:
    """The entries of `po` that msgattrib selects (none: empty), obsolete ones left out."""
    result = subprocess.run(
        ["msgattrib", *selection, "--no-obsolete", "--no-wrap", str(po)],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


@needs_gettext
def test_german_catalogue_covers_every_marked_string(tmp_path):
    """A string marked for translation but missing from django.po, untranslated or fuzzy
    fails here: run `make translations`, translate, and commit django.po."""
    assert CATALOGUE.exists()
    extracted = _extracted_catalogue(tmp_path)

    untranslated = _entries(extracted, "--untranslated")
    fuzzy = _entries(extracted, "--only-fuzzy")

    assert "msgid" not in untranslated, f"Untranslated German strings:\n{untranslated}"
    assert "msgid" not in fuzzy, f"Fuzzy German strings:\n{fuzzy}"
    assert "msgid" not in _entries(CATALOGUE, "--untranslated")
    assert "msgid" not in _entries(CATALOGUE, "--only-fuzzy")
    # Format strings match their English (%(credits)s stays %(credits)s).
    subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(CATALOGUE)], check=True)
