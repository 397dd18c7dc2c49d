"""Turn a raw access token into the active user it names."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication


def get_user_for_token(raw_token: str) -> AbstractBaseUser | None:
    """Return the active user of a valid access token, or None for any failure.

    Signature, algorithm, expiry and token type ("access" only) are checked by
    SimpleJWT; the user must still exist and be active.
    """
    if not raw_token:
        return None
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(raw_token)
        return authentication.get_user(validated)
    except (AuthenticationFailed, ValidationError, ValueError, TypeError):
        return None
