"""What every viewer's socket shares, whatever it streams (one host's snapshots,
metrics.consumers; the fleet, metrics.fleetconsumers): the token session, the
permission check, the per-user quota, refusing with our close codes, and the
client's frames (ping, auth renewal, errors, rate and size limits)."""

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.middleware import BEARER_PROTOCOL, get_socket_token
from accounts.sessions import TokenSession
from accounts.tokens import refusal
from core import closes, instruments
from core.dispatch import DirectDispatch
from metrics.permissions import can_watch
from metrics.quotas import get_quota
from metrics.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

MAX_ECHOED_TYPE = 40

# Not thread-sensitive: the checks of many sockets run in parallel on the thread
# pool instead of queueing on the one thread Django keeps for sync code.
check_permission = database_sync_to_async(can_watch, thread_sensitive=False)


class ViewerConsumer(DirectDispatch, AsyncJsonWebsocketConsumer):
    """An authenticated viewer's socket: refused with our close codes, counted in
    its user's quota, closed when its token expires or its user is revoked, and
    answering ping and auth frames."""

    # No channel-layer alias: Channels then makes no channel for each socket.
    channel_layer_alias = None
    joined = False
    user_id = ""
    # Set once the user is known to be allowed; frames before that are ignored.
    authorized = False
    accepted = False
    # Counted among its user's sockets (metrics.quotas), until it leaves.
    counted = False
    # A revocation that came before the handshake completed (closed right after).
    revoked: closes.Close | None = None
    # The token's expiry and renewal, from accept to close.
    session: TokenSession | None = None
    # Counted among the open sockets (core.instruments), until it leaves.
    counted_open = False

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also after a crash in a handler, which skips disconnect(): a socket
            # that is gone must not stay counted as a viewer or subscribed.
            await self.leave()

    async def authenticate(self) -> TokenSession | None:
        """The session of the socket's token, if its user may watch; else refuse
        (4001 or 4003) and return None."""
        session = TokenSession.for_socket(self)
        if session is None:
            await self.refuse(refusal(get_socket_token(self.scope)))
            return None
        if not await self.may_watch(session.user):
            await self.refuse(closes.PERMISSION_REQUIRED)
            return None
        return session

    async def take_place(self) -> bool:
        """Count the socket among its user's; False (refused with 4029) if the user
        has as many as allowed."""
        if not await get_quota().open(self.user_id):
            await self.refuse(closes.SOCKET_QUOTA_EXCEEDED)
            return False
        self.counted = True
        return True

    async def open_session(self, session: TokenSession) -> bool:
        """Complete the handshake and start the session; False if the user was
        revoked meanwhile (the socket is then closed)."""
        # Counted before the handshake completes: a client that sees it open is.
        self.counted_open = True
        instruments.viewer_sockets_open.inc()
        await self.accept(self.subprotocol())
        self.accepted = True
        if self.revoked is not None:
            await self.close_with(self.revoked)
            return False
        self.authorized = True
        self.bucket = TokenBucket(
            settings.METRICS_WS_MESSAGES_PER_SECOND, settings.METRICS_WS_MESSAGE_BURST
        )
        self.session = session
        session.start()
        return True

    def subprotocol(self) -> str | None:
        """The subprotocol to accept: `bearer` if offered (never the token after it)."""
        offered = self.scope.get("subprotocols") or []
        return BEARER_PROTOCOL if BEARER_PROTOCOL in offered else None

    async def refuse(self, close: closes.Close) -> None:
        """Accept, then close: a close before accepting would reach a browser as
        HTTP 403, indistinguishable from a network error."""
        await self.accept(self.subprotocol())
        await self.close_with(close)

    async def close_with(self, close: closes.Close) -> None:
        """Close the socket with a code of ours and its reason."""
        await self.close(code=close.code, reason=close.reason)

    async def may_watch(self, user) -> bool:
        """The permission check, which costs a query only when one is required."""
        return not settings.METRICS_REQUIRED_PERMISSION or await check_permission(user)

    async def renewal_refusal(self, user) -> closes.Close | None:
        """Why a renewal by `user` closes the socket (None: it does not): 4003 if
        the user lost the permission required."""
        if not await self.may_watch(user):
            return closes.PERMISSION_REQUIRED
        return None

    async def disconnect(self, code: int) -> None:
        """Leave the groups when the socket goes away."""
        await self.leave()

    async def leave(self) -> None:
        """Stop the expiry timer and stop counting this client (once); subclasses
        leave their groups too."""
        if self.session is not None:
            self.session.stop()
        if self.counted_open:
            self.counted_open = False
            instruments.viewer_sockets_open.dec()
        if self.counted:
            self.counted = False
            await get_quota().close(self.user_id)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        """Answer a client frame: pong, auth renewal, or an error message."""
        if not self.authorized:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data)
        if size > settings.METRICS_WS_MAX_MESSAGE_BYTES:
            instruments.frame_refused("too_big")
            await self.close_with(closes.FRAME_TOO_BIG)
            return
        if not self.bucket.allow():
            instruments.frame_refused("too_many")
            await self.close_with(closes.RATE_EXCEEDED)
            return
        if text_data is None:
            instruments.frame_refused("binary")
            await self.send_error("binary frames are not supported; send JSON text")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            instruments.frame_refused("invalid_json")
            await self.send_error("invalid JSON")
            return
        if not isinstance(content, dict):
            instruments.frame_refused("not_an_object")
            await self.send_error('expected a JSON object with a "type" field')
            return
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "auth":
            await self.session.renew(content.get("token"))
        elif not isinstance(kind, str):
            instruments.frame_refused("no_type")
            await self.send_error('missing "type": expected a string such as "ping"')
        else:
            instruments.frame_refused("unknown_type")
            await self.send_error(f"unknown message type {kind[:MAX_ECHOED_TYPE]!r}")

    async def send_error(self, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_json({"type": "error", "message": message})

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The user was deactivated or deleted, or changed password (close 4001),
        or may no longer see the host (4004, metrics.access)."""
        close = event.get("close", closes.USER_INACTIVE)
        if self.accepted:
            await self.close_with(close)
        else:
            # Closing before the handshake completes would reach a browser as 403.
            self.revoked = close
