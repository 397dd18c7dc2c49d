"""SimpleJWT's tokens, refusing any signed token whose claims have the wrong shape.

Once a token's signature checks, PyJWT and SimpleJWT read its claims trusting their
types: an `exp` of Infinity (int() overflows), a string or list `exp`, a list or
nested `user_id`, a `jti` longer than its column, raised TypeError, OverflowError or a
database error deep inside and answered HTTP 500, on the socket's handshake as on the
API. Every token of the service is decoded here instead: a decoding failure of any
kind, or a claim of the wrong shape, is a TokenBackendError like a bad signature, so
whatever a signed token contains it is refused as invalid (401; 4001 on a socket).
"""

import math
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings

# The last second datetime can hold (9999-12-31T23:59:59Z): SimpleJWT turns `exp`
# into a datetime, which overflows past it.
LAST_EPOCH = 253402300799
# OutstandingToken.jti is a CharField(max_length=255).
MAX_JTI_LENGTH = 255
# What PyJWT raises, besides its own errors, reading a claim of an unexpected type.
DECODING_ERRORS = (TypeError, ValueError, OverflowError)


def invalid(reason: str) -> TokenBackendError:
    """The error of a token with a malformed claim (the reason is for the logs)."""
    error = TokenBackendError(_("Token is invalid"))
    error.add_note(reason)
    return error


def is_epoch(value: object) -> bool:
    """Whether a claim is a time SimpleJWT can read: seconds since 1970, finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value <= LAST_EPOCH


def check_user_id(value: object) -> None:
    """The user claim must be a value the user table's key accepts (no query)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid("the user claim is not a string or a whole number")
    field = get_user_model()._meta.get_field(api_settings.USER_ID_FIELD)
    try:
        # Also bounds integers to the column's range: a query with a bigger one
        # fails in the database driver, not with DoesNotExist.
        field.run_validators(field.to_python(value))
    except ValidationError:
        raise invalid("the user claim is not a valid user id") from None


def check_claims(payload: Any) -> None:
    """Raise TokenBackendError unless every claim SimpleJWT reads has its shape."""
    if not isinstance(payload, dict):
        raise invalid("the payload is not an object")
    if not is_epoch(payload.get("exp")):
        raise invalid("exp is missing or not a time")
    for claim in ("iat", "nbf"):
        if claim in payload and not is_epoch(payload[claim]):
            raise invalid(f"{claim} is not a time")
    jti = payload.get(api_settings.JTI_CLAIM)
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise invalid("the token id is missing or not a short string")
    if not isinstance(payload.get(api_settings.TOKEN_TYPE_CLAIM), str):
        raise invalid("the token type is missing or not a string")
    if api_settings.USER_ID_CLAIM not in payload:
        raise invalid("the user claim is missing")
    check_user_id(payload[api_settings.USER_ID_CLAIM])
    revoke = payload.get(api_settings.REVOKE_TOKEN_CLAIM)
    if revoke is not None and not isinstance(revoke, str):
        raise invalid("the password claim is not a string")


class CheckedTokenBackend(TokenBackend):
    """SimpleJWT's backend, whose decode() fails only with TokenBackendError."""

    def decode(self, token, verify: bool = True) -> dict[str, Any]:
        try:
            payload = super().decode(token, verify=verify)
        except DECODING_ERRORS as error:
            reason = f"a claim could not be read: {type(error).__name__}"
            raise invalid(reason) from None
        check_claims(payload)
        return payload


# Built as SimpleJWT builds its own (rest_framework_simplejwt.state).
token_backend = CheckedTokenBackend(
    api_settings.ALGORITHM,
    api_settings.SIGNING_KEY,
    api_settings.VERIFYING_KEY,
    api_settings.AUDIENCE,
    api_settings.ISSUER,
    api_settings.JWK_URL,
    api_settings.LEEWAY,
    api_settings.JSON_ENCODER,
)


class CheckedClaims:
    """Decodes and signs with CheckedTokenBackend (mix in before a Token class)."""

    def get_token_backend(self) -> TokenBackend:
        return token_backend


class AccessToken(CheckedClaims, tokens.AccessToken):
    """An access token: what a socket or the API is opened with."""


class UntypedToken(CheckedClaims, tokens.UntypedToken):
    """A token of any type, for /api/auth/verify."""
