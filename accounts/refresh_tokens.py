"""Refresh tokens: kept in the database as digests, used once, within one session.

SimpleJWT's blacklist app records every refresh token it issues (OutstandingToken)
with the token's whole text, which anyone who can read the database could use.
Blacklisting, `flushexpiredtokens` and the admin work by `jti`, user and expiry only,
so the text is stored here as its SHA-256 digest instead (accounts/migrations/0002
converted the rows written before).

A session is what one login starts. Rotating its refresh token (/api/auth/refresh)
gives a new one with the first one's expiry, so JWT_REFRESH_TOKEN_LIFETIME bounds
the session, however often it is renewed; the access tokens it issues never outlive
it either. The old token is blacklisted in the same transaction as the new one is
recorded, and a refresh token can be blacklisted once only (the blacklist's unique
key on the token), so of any number of parallel refreshes of one token, exactly one
succeeds. A password change blacklists every refresh token of its user
(accounts.revocation).
"""

import hashlib
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.claims import AccessToken, CheckedClaims

DIGEST_PREFIX = "sha256:"


def digest(text: str) -> str:
    """What the database keeps of a token's text: its SHA-256, marked as such."""
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def token_owner(token: tokens.Token) -> AbstractBaseUser | None:
    """The user a token names, None if there is no such user any more."""
    user_model = get_user_model()
    lookup = {api_settings.USER_ID_FIELD: token[api_settings.USER_ID_CLAIM]}
    return user_model._default_manager.filter(**lookup).first()


class RefreshToken(CheckedClaims, tokens.RefreshToken):
    """SimpleJWT's refresh token, recorded as a digest, rotated within its session."""

    access_token_class = AccessToken

    @classmethod
    def for_user(cls, user: AbstractBaseUser) -> "RefreshToken":
        """A new session's refresh token for `user`, recorded as outstanding."""
        # Token.for_user, past the blacklist mixin's, which would record the text.
        token = super(tokens.BlacklistMixin, cls).for_user(user)
        token.record(user)
        return token

    def record(self, user: AbstractBaseUser | None) -> OutstandingToken:
        """Record this token as outstanding (its digest), if it is not yet."""
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=self[api_settings.JTI_CLAIM],
            defaults={
                "user": user,
                "created_at": self.current_time,
                "token": digest(str(self)),
                "expires_at": datetime_from_epoch(self["exp"]),
            },
        )
        return outstanding

    def outstand(self) -> OutstandingToken:
        """SimpleJWT's name for record(), with the user the token names."""
        return self.record(token_owner(self))

    def blacklist(self) -> BlacklistedToken:
        """Blacklist this token (logout); blacklisting it again is harmless."""
        blacklisted, _ = BlacklistedToken.objects.get_or_create(token=self.outstand())
        return blacklisted

    def blacklist_once(self) -> None:
        """Blacklist this token; IntegrityError if it already was (in a race too)."""
        BlacklistedToken.objects.create(token=self.outstand())

    @property
    def access_token(self) -> AccessToken:
        """An access token of this session, expiring at the latest when it does."""
        access = super().access_token
        access["exp"] = min(access["exp"], self["exp"])
        return access

    def rotated(self) -> "RefreshToken":
        """The next refresh token of this session: a new id, the same expiry."""
        rotated = type(self)()
        for claim, value in self.payload.items():
            if claim not in (api_settings.JTI_CLAIM, "iat"):
                rotated[claim] = value
        return rotated

    def rotate(self, user: AbstractBaseUser) -> "RefreshToken":
        """Blacklist this token and record the next one, atomically.

        Raises TokenError if this token was blacklisted meanwhile: by a parallel
        refresh of it, a logout or a password change.
        """
        try:
            with transaction.atomic():
                self.blacklist_once()
                rotated = self.rotated()
                rotated.record(user)
        except IntegrityError:
            raise TokenError(_("Token is blacklisted")) from None
        return rotated


def revoke_refresh_tokens(user: AbstractBaseUser) -> int:
    """Blacklist every unexpired refresh token of `user`; return how many."""
    waiting = OutstandingToken.objects.filter(
        user=user, blacklistedtoken__isnull=True, expires_at__gt=datetime.now(tz=UTC)
    )
    blacklisted = [BlacklistedToken(token=token) for token in waiting]
    # A refresh or logout blacklisting one of them meanwhile is no conflict.
    BlacklistedToken.objects.bulk_create(blacklisted, ignore_conflicts=True)
    return len(blacklisted)
