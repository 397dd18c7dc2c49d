"""Turn a raw access token into the active user it names, and when it expires."""

import asyncio
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from monitor.loop_local import LoopLocal

CHECK_ERRORS = (AuthenticationFailed, ValidationError, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class TokenAuthentication:
    """An access token's active user, and the token's expiry (Unix time)."""

    user: AbstractBaseUser
    expires_at: float


def validate_token(raw_token: object) -> Token | None:
    """Check an access token's signature, algorithm, expiry and type; no database.

    Returns the validated token, or None for any failure.
    """
    if not isinstance(raw_token, str) or not raw_token:
        return None
    try:
        return JWTAuthentication().get_validated_token(raw_token)
    except CHECK_ERRORS:
        return None


def token_user_id(validated: Token) -> str:
    """The id of the user a validated token names, as text."""
    return str(validated[api_settings.USER_ID_CLAIM])


def load_active_user(validated: Token) -> AbstractBaseUser | None:
    """The token's user if it still exists and is active (one query), else None."""
    try:
        return JWTAuthentication().get_user(validated)
    except CHECK_ERRORS:
        return None


class ActiveUsers:
    """Active users by id, as a web process last read them from the database.

    A storm of sockets opened with the same user's tokens costs one query: an
    entry is trusted for AUTH_USER_CACHE_SECONDS, and lookups of one user that
    overlap share one query. A user deactivated or deleted is forgotten at once
    by every process (accounts.revocation), so the lifetime bounds only changes
    made behind the ORM's back (queryset.update(), raw SQL, the permission
    tables).
    """

    def __init__(self) -> None:
        self.users: dict[str, tuple[AbstractBaseUser, float]] = {}
        self.lookups: dict[str, asyncio.Future] = {}
        # Bumped by forget(): a lookup that began before is not remembered.
        self.generation = 0

    async def get(self, validated: Token) -> AbstractBaseUser | None:
        """The token's active user, from memory while fresh, else the database."""
        user_id = token_user_id(validated)
        cached = self.users.get(user_id)
        if cached and time.monotonic() - cached[1] < settings.AUTH_USER_CACHE_SECONDS:
            return cached[0]
        lookup = self.lookups.get(user_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self.load(user_id, validated))
            self.lookups[user_id] = lookup
        return await asyncio.shield(lookup)

    async def load(self, user_id: str, validated: Token) -> AbstractBaseUser | None:
        """Read the user from the database and remember an active one."""
        started, generation = time.monotonic(), self.generation
        try:
            user = await check_user(validated)
        finally:
            if self.lookups.get(user_id) is asyncio.current_task():
                del self.lookups[user_id]
        if user is not None and generation == self.generation:
            self.users[user_id] = (user, started)
        return user

    def forget(self, user_id: object) -> None:
        """Drop a user, so that the next socket of theirs reads the database."""
        self.users.pop(str(user_id), None)
        self.lookups.pop(str(user_id), None)
        self.generation += 1

    def clear(self) -> None:
        """Drop every user (when this process stops hearing of revocations)."""
        self.users.clear()
        self.lookups.clear()
        self.generation += 1


check_user = database_sync_to_async(load_active_user, thread_sensitive=False)
_active_users = LoopLocal(ActiveUsers)


def get_active_users() -> ActiveUsers:
    """This event loop's (this web process's) cache of active users."""
    return _active_users.get()


async def authenticate_socket_token(raw_token: object) -> TokenAuthentication | None:
    """Check an access token; return its active user and its expiry, or None.

    The signature, algorithm, expiry and token type ("access" only) are checked
    by SimpleJWT in the event loop (no database); the user must exist and be
    active, checked through this process's ActiveUsers.
    """
    validated = validate_token(raw_token)
    if validated is None:
        return None
    user = await get_active_users().get(validated)
    if user is None:
        return None
    return TokenAuthentication(user=user, expires_at=float(validated["exp"]))
