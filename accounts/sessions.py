"""The token side of a socket, from connect to close: its expiry, its renewal with an
`auth` frame, and the re-check after it joined the process's revocations.

A socket is opened with an access token, which the middleware checks
(accounts.middleware) and records in the scope. Revocations (a user deactivated or
deleted, accounts.revocation) reach a process only while it is a member of the
revocation group (metrics.fanout). So that no socket slips between its token's
check and its process hearing of a revocation, the process's ActiveUsers counts
generations: a revocation heard, or the process ceasing to hear them, starts a
new one, and a token checked in an earlier generation is checked again once its
socket has joined (TokenSession.still_valid). The functions at the end are how
the membership reports those moments.
"""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from django.contrib.auth.base_user import AbstractBaseUser

from accounts.middleware import get_socket_token
from accounts.tokens import (
    TokenAuthentication,
    authenticate_socket_token,
    get_active_users,
    refusal,
)
from agent.snapshots import format_timestamp
from core import closes


class SessionSocket(Protocol):
    """The socket a session belongs to (metrics.consumers.MetricsConsumer)."""

    scope: dict[str, Any]

    async def renewal_refusal(self, user: AbstractBaseUser) -> closes.Close | None: ...

    async def close_with(self, close: closes.Close) -> None: ...

    async def send_json(self, content: Any, close: bool = False) -> None: ...


class TokenSession:
    """A socket's token: whose it is, until when, renewed how."""

    def __init__(self, socket: SessionSocket, found: TokenAuthentication) -> None:
        self.socket = socket
        self.user = found.user
        self.user_id = str(found.user.pk)
        self.expires_at = found.expires_at
        self.generation = found.generation
        # A timer, not a task per socket: thousands of sockets each wait for expiry.
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.expiry_close: asyncio.Task | None = None

    @classmethod
    def for_socket(cls, socket: SessionSocket) -> "TokenSession | None":
        """The session of the token the middleware checked, None if it failed."""
        found = socket.scope.get("authentication")
        return None if found is None else cls(socket, found)

    async def still_valid(self) -> bool:
        """Whether the user is still active, now that revocations reach the socket.

        Only when the process forgot users since the token was checked (a
        revocation, or the process leaving the groups) is it checked again.
        """
        if self.generation == get_active_users().generation:
            return True
        found = await authenticate_socket_token(get_socket_token(self.socket.scope))
        return self.is_mine(found)

    def is_mine(self, found: TokenAuthentication | None) -> bool:
        """Whether a token checked out, for this session's user."""
        return found is not None and str(found.user.pk) == self.user_id

    def start(self) -> None:
        """Close the socket with 4001 (token expired) once the token has expired,
        unless renewed."""
        # A renewal moves expires_at on: the timer then just looks again later.
        remaining = self.expires_at - time.time()
        if remaining > 0:
            loop = asyncio.get_running_loop()
            self.expiry_timer = loop.call_later(remaining, self.start)
        else:
            self.expiry_timer = None
            self.expiry_close = asyncio.create_task(
                self.socket.close_with(closes.TOKEN_EXPIRED)
            )

    def stop(self) -> None:
        """Stop watching for expiry (the socket is going away)."""
        if self.expiry_timer is not None:
            self.expiry_timer.cancel()
            self.expiry_timer = None

    async def renew(self, token: object) -> None:
        """Extend the socket's life with a new access token of the same user, and
        say until when; close with 4001 (or 4003) if the token will not do."""
        found = await authenticate_socket_token(token)
        if found is None:
            await self.socket.close_with(refusal(token))
            return
        if not self.is_mine(found):
            await self.socket.close_with(closes.ANOTHER_USERS_TOKEN)
            return
        refused = await self.socket.renewal_refusal(found.user)
        if refused is not None:
            await self.socket.close_with(refused)
            return
        self.expires_at = found.expires_at
        expires = format_timestamp(datetime.fromtimestamp(found.expires_at, tz=UTC))
        await self.socket.send_json({"type": "auth", "expires": expires})


def revocations_heard() -> None:
    """This process now hears revocations: users it remembered while it did not
    are read again by the next sockets (those connecting now were just checked)."""
    get_active_users().clear()


def revocations_unheard() -> None:
    """This process no longer hears revocations: it trusts no remembered user, and
    tokens checked until now are checked again when their sockets join."""
    get_active_users().invalidate()


def user_revoked(user_id: object) -> None:
    """A user was revoked: their next socket reads the database, and tokens checked
    until now are checked again when their sockets join."""
    get_active_users().forget(user_id)
