"""Tokens that must be refused, forged the ways an attacker or a bug would."""

import base64
import json
from datetime import timedelta

import jwt
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(user) -> str:
    """An access token for `user` with `alg: none` and no signature."""
    claims = dict(AccessToken.for_user(user).payload)
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


def foreign_signed_token(user) -> str:
    """An access token for `user` signed with a key that is not ours."""
    claims = dict(AccessToken.for_user(user).payload)
    return jwt.encode(claims, "not-our-signing-key-but-long-enough-32b", "HS256")


def expired_token(user) -> str:
    """An access token for `user` that expired a minute ago."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(minutes=1))
    return str(token)


def refresh_token(user) -> str:
    """A valid refresh token, which must not pass as an access token."""
    return str(RefreshToken.for_user(user))


def signed_token(claims: dict, key: str | None = None) -> str:
    """A token with exactly these claims, signed with the service's key (HS256)."""
    from django.conf import settings

    return jwt.encode(claims, key or settings.SIMPLE_JWT["SIGNING_KEY"], "HS256")


def claims_of(user, kind: str = "access") -> dict:
    """The claims of a fresh token of `user`, of type "access" or "refresh"."""
    return {**AccessToken.for_user(user).payload, "token_type": kind}
