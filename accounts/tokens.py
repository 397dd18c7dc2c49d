"""Turn a raw access token into the active user it names, and when it expires."""

import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from core import closes
from core.loop_local import LoopLocal
from core.remembered import Remembered
from core.singleflight import SingleFlight

CHECK_ERRORS = (AuthenticationFailed, ValidationError, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class TokenAuthentication:
    """An access token's active user, the token's expiry (Unix time), and the
    ActiveUsers generation the user was confirmed at (see accounts.sessions)."""

    user: AbstractBaseUser
    expires_at: float
    generation: int = 0


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


def refusal(raw_token: object) -> closes.Close:
    """Why a socket's token was refused (authenticate_socket_token gave None): the
    close to send. Worked out only for refusals, so valid tokens pay nothing."""
    if not isinstance(raw_token, str) or not raw_token:
        return closes.NO_TOKEN
    expired = False
    for token_class in api_settings.AUTH_TOKEN_CLASSES:
        try:
            token_class(raw_token)
        except ExpiredTokenError:
            # PyJWT checks the signature first: this token is ours, but too old.
            expired = True
        except (TokenError, *CHECK_ERRORS):
            continue
        else:
            # A valid token: what was refused is its user.
            return closes.USER_REFUSED
    return closes.TOKEN_EXPIRED if expired else closes.INVALID_TOKEN


def token_user_id(validated: Token) -> str:
    """The id of the user a validated token names, as text."""
    return str(validated[api_settings.USER_ID_CLAIM])


def load_active_user(user_id: str) -> AbstractBaseUser | None:
    """The user if they still exist and are active (one query), else None."""
    lookup = {api_settings.USER_ID_FIELD: user_id}
    try:
        user = get_user_model()._default_manager.get(**lookup)
    except (ObjectDoesNotExist, *CHECK_ERRORS):
        return None
    return user if user.is_active else None


def issued_for(token: Token, user: AbstractBaseUser) -> bool:
    """Whether a token was issued under the user's current password.

    Tokens carry a digest of the password's hash (SimpleJWT's CHECK_REVOKE_TOKEN);
    changing the password makes every token issued before it fail this.
    """
    if not api_settings.CHECK_REVOKE_TOKEN:
        return True
    claim = token.get(api_settings.REVOKE_TOKEN_CLAIM)
    return claim == get_md5_hash_password(user.password)


def user_cache_seconds() -> float:
    """How long what a process read of a user is trusted: AUTH_USER_CACHE_SECONDS."""
    return settings.AUTH_USER_CACHE_SECONDS


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
        self.users: Remembered[AbstractBaseUser] = Remembered(user_cache_seconds)
        self.lookups: SingleFlight[AbstractBaseUser | None] = SingleFlight()
        # Bumped by forget() and invalidate(): what was read before may be stale.
        self.generation = 0

    async def get(self, validated: Token) -> tuple[AbstractBaseUser | None, int]:
        """The token's active user (from memory while fresh, else the database),
        and the generation it holds for; no user for a token issued under another
        password than the user's."""
        user_id = token_user_id(validated)
        while True:
            generation = self.generation
            cached = self.users.get(user_id)
            # A token from before a password change is not trusted on memory: the
            # memory may be what is out of date (a change without signals).
            if cached is not None and issued_for(validated, cached):
                return cached, generation
            # Shared by overlapping lookups of the user, whatever their tokens: each
            # caller checks its own token against what was read.
            user = await self.lookups.run(user_id, lambda: self.load(user_id))
            # A revocation while the query ran may have come too late for it.
            if generation == self.generation:
                if user is not None and not issued_for(validated, user):
                    return None, generation
                return user, generation

    async def load(self, user_id: str) -> AbstractBaseUser | None:
        """Read the user from the database and remember an active one."""
        started, generation = time.monotonic(), self.generation
        user = await check_user(user_id)
        if user is not None and generation == self.generation:
            self.users.put(user_id, user, started)
        return user

    def forget(self, user_id: object) -> None:
        """Drop a user, so that the next socket of theirs reads the database."""
        self.users.pop(str(user_id))
        self.lookups.forget(str(user_id))
        self.generation += 1

    def clear(self) -> None:
        """Drop every remembered user: the next socket of each reads the database."""
        self.users.clear()

    def invalidate(self) -> None:
        """Drop every user, and treat what any lookup in flight read as stale."""
        self.clear()
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
    user, generation = await get_active_users().get(validated)
    if user is None:
        return None
    return TokenAuthentication(user, float(validated["exp"]), generation)
