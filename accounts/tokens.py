"""Turn a raw access token into the active user it names, and when it expires."""

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication


@dataclass(frozen=True)
class TokenAuthentication:
    """An access token's active user, and the token's expiry (Unix time)."""

    user: AbstractBaseUser
    expires_at: float


def authenticate_token(raw_token: object) -> TokenAuthentication | None:
    """Check an access token; return its user and expiry, or None for any failure.

    Signature, algorithm, expiry and token type ("access" only) are checked by
    SimpleJWT; the user must still exist and be active.
    """
    if not isinstance(raw_token, str) or not raw_token:
        return None
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(raw_token)
        user = authentication.get_user(validated)
        return TokenAuthentication(user=user, expires_at=float(validated["exp"]))
    except (AuthenticationFailed, ValidationError, ValueError, TypeError, KeyError):
        return None
