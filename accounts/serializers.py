"""SimpleJWT's serializers, on the service's tokens (accounts.claims and
accounts.refresh_tokens), mended where they fail with a 500 or let a session fork."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import OperationalError
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import (
    TokenBlacklistSerializer,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
    TokenVerifySerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.claims import UntypedToken
from accounts.refresh_tokens import RefreshToken, token_owner
from accounts.tokens import issued_for


class DatabaseBusy(APIException):
    status_code = 503
    default_detail = "The database is busy; try again shortly."
    default_code = "database_busy"


class LoginSerializer(TokenObtainPairSerializer):
    """A username and password for a new session's access and refresh tokens."""

    token_class = RefreshToken


class RefreshSerializer(TokenRefreshSerializer):
    """A refresh token for an access token and the session's next refresh token.

    The refresh token is used up (blacklisted) as the next one is recorded, in one
    transaction: of parallel refreshes of one token exactly one succeeds, the
    others get 401. The next token keeps the session's expiry. A refresh token of a
    deleted or inactive user, or from before the user's password changed, is a 401
    (SimpleJWT 5.5.1 answers 500 for a deleted user and checks no password).
    """

    token_class = RefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user = self.active_user(refresh)
        try:
            rotated = refresh.rotate(user)
        except OperationalError:
            # SQLite waited its whole timeout for the write lock: say so, not 500.
            raise DatabaseBusy from None
        return {"access": str(rotated.access_token), "refresh": str(rotated)}

    def active_user(self, refresh: RefreshToken) -> AbstractBaseUser:
        """The token's user, if active and the password is the one it was issued
        under; else AuthenticationFailed."""
        user = token_owner(refresh)
        if not api_settings.USER_AUTHENTICATION_RULE(user) or not issued_for(
            refresh, user
        ):
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        return user


class VerifySerializer(TokenVerifySerializer):
    """Whether a token is valid: signed, well-formed, unexpired, not blacklisted."""

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        token = UntypedToken(attrs["token"])
        jti = token[api_settings.JTI_CLAIM]
        if BlacklistedToken.objects.filter(token__jti=jti).exists():
            raise TokenError(_("Token is blacklisted"))
        return {}


class LogoutSerializer(TokenBlacklistSerializer):
    """A refresh token to blacklist, ending its session."""

    token_class = RefreshToken
