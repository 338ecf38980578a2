"""`Authorization: Bearer veo_...` for the API (and for the private media URLs)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiToken, User


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticates `Authorization: Bearer <token>`.

    Without a Bearer header it returns None, so session authentication (with its CSRF
    check) can try. A Bearer header that does not name an active token of an active user
    is a 401, never a fallback to the session.
    """

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'."
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        # Imported here: DRF imports this class while rest_framework.views is still loading,
        # and the token service depends on it (through veoproject.exceptions).
        from accounts.tokens import TokenInvalid, authenticate_token

        try:
            token = authenticate_token(raw)
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # RFC 6750: say why when a token was presented and refused.
        parts = get_authorization_header(request).split()
        if parts and parts[0].lower() == self.keyword:
            return 'Bearer realm="api", error="invalid_token"'
        return 'Bearer realm="api"'
