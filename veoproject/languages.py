"""The language a person reads the portal and their emails in (README "Languages").

- Anonymous visitors: Django's LocaleMiddleware decides (the switcher's cookie, else the
  browser's Accept-Language, else LANGUAGE_CODE).
- A logged-in user with a stored `User.language`: that language, on every request from
  the moment they log in (`UserLanguageMiddleware`), and its cookie is set so the pages
  stay in it after they log out.
- The switcher posts to `set_language` (Django's view at /i18n/setlang/), which also
  stores the choice on the logged-in user.
- Emails: `for_recipient(user)`, the user's language, else the page's that sends one
  (signup), else the site's default (a worker has no request to take one from).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.formats import number_format
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from accounts.models import User


def for_recipient(user: User | None, *, default: str | None = None) -> str:
    """The language of an email to `user`: theirs; else `default` (a page that sends one
    passes the language it is shown in), else the site's default (a worker's emails)."""
    stored = stored_language(user) if user is not None else ""
    return stored or default or settings.LANGUAGE_CODE


def grouped(number: int) -> str:
    """A whole number as the active language writes it: 1,250 in English, 1.250 in German
    (templates: `intcomma`; USE_THOUSAND_SEPARATOR stays off, ids in links stay plain)."""
    return number_format(number, force_grouping=True)


def stored_language(user: User) -> str:
    """The user's stored choice if the site still offers it; "" for none."""
    return user.language if user.language in supported_languages() else ""


def remember_signup_language(*, user: User, request: HttpRequest) -> None:
    """A new user's language: the one the visitor's cookie or browser asked for, if we offer
    it and it is not the site's default (which needs no storing: a later browser or switch
    may still choose). Only ever fills an empty choice."""
    asked = translation.get_language_from_request(request)
    default = translation.get_supported_language_variant(settings.LANGUAGE_CODE)
    if asked in supported_languages() and asked != default and not user.language:
        User.objects.filter(pk=user.pk, language="").update(language=asked)
        user.language = asked


def supported_languages() -> set[str]:
    return {code for code, _name in settings.LANGUAGES}


def _set_cookie(response: HttpResponse, language: str) -> None:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's `set_language` (cookie and redirect to a safe `next`); for a logged-in
    user the choice is also stored on their account."""
    response = django_set_language(request)
    chosen = request.POST.get("language", "")
    user = request.user
    if isinstance(user, User) and chosen in supported_languages() and user.language != chosen:
        user.language = chosen
        user.save(update_fields=["language"])
    return response


class UserLanguageMiddleware:
    """After authentication: a logged-in user's stored language wins over the cookie and
    the browser's; the cookie follows it, so a logout keeps the language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = _language_of(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        # Read again: the request may have logged the user in (or changed the language).
        language = _language_of(request)
        if (
            language
            and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != language
            and settings.LANGUAGE_COOKIE_NAME not in response.cookies
        ):
            _set_cookie(response, language)
        return response


def _language_of(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return stored_language(user) if isinstance(user, User) else ""
