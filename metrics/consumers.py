"""The metrics WebSocket: authenticated clients receive every snapshot."""

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from accounts.middleware import BEARER_PROTOCOL
from accounts.revocation import user_group
from accounts.tokens import authenticate_token
from metrics.fanout import get_fanout
from metrics.permissions import can_watch
from metrics.ratelimit import TokenBucket
from metrics.snapshots import format_timestamp
from metrics.store import load_latest
from metrics.viewers import get_registry
from monitor.frames import SharedText

logger = logging.getLogger(__name__)

# Close codes of our own, in the application range 4000-4999 (daphne turns any
# other code but 1000 into 1011).
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_POLICY_VIOLATION = 4008
CLOSE_MESSAGE_TOO_BIG = 4009
# Daphne reports any server-side failure to the client as 1011.
CLOSE_INTERNAL_ERROR = 1011

MAX_ECHOED_TYPE = 40

# Not thread-sensitive: the checks of many sockets run in parallel on the thread
# pool instead of queueing on the one thread Django keeps for sync code.
check_token = database_sync_to_async(authenticate_token, thread_sensitive=False)
check_permission = database_sync_to_async(can_watch, thread_sensitive=False)


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    """Streams snapshots to one authenticated client and answers its frames."""

    joined = False
    # Set once the user is known to be allowed; frames before that are ignored.
    authorized = False
    # Publish time of the snapshot sent on connect: the first broadcast may repeat it.
    sent_on_connect: float | None = None
    # Broadcasts that arrive while connect() is still sending the latest snapshot.
    held: list[tuple[float | None, str]] | None = None
    expires_at: float | None = None
    expiry_task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError) as error:
            if hasattr(self, "channel_name"):
                raise
            # Channels could not make this socket's channel: Redis is down. Tell the
            # client to come back later instead of failing the handshake with 500.
            logger.warning("Redis unavailable on connect: %s", error)
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_INTERNAL_ERROR})
        finally:
            # Also after a crash in a handler, which skips disconnect(): a socket
            # that is gone must not stay counted as a viewer or subscribed.
            await self.leave()

    async def connect(self) -> None:
        """Accept, then close with 4001/4003 unless the user may watch."""
        offered = self.scope.get("subprotocols") or []
        # Echo the protocol name only: never the token that follows it.
        await self.accept(BEARER_PROTOCOL if BEARER_PROTOCOL in offered else None)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if not await self.may_watch(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.authorized = True
        self.bucket = TokenBucket(
            settings.METRICS_WS_MESSAGES_PER_SECOND, settings.METRICS_WS_MESSAGE_BURST
        )
        self.expires_at = self.scope.get("token_expires_at")
        self.expiry_task = asyncio.create_task(self.close_at_expiry())
        self.held = []
        try:
            await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
            await get_fanout().join(self)
            self.joined = True
            get_registry().add()
            latest = await load_latest()
        except (RedisError, OSError) as error:
            logger.warning("Redis unavailable on connect: %s", error)
            await self.close(code=CLOSE_INTERNAL_ERROR)
            return
        if latest is not None:
            await self.send(text_data=SharedText(latest["text"]))
            self.sent_on_connect = latest["ts"]
        held, self.held = self.held, None
        for published_at, text in held:
            await self.send_snapshot(published_at, text)

    async def may_watch(self, user) -> bool:
        """The permission check, which costs a query only when one is required."""
        return not settings.METRICS_REQUIRED_PERMISSION or await check_permission(user)

    async def close_at_expiry(self) -> None:
        """Close with 4001 when the token expires, unless renewed in time."""
        # Sleep to the expiry; a renewal moves it on, so look again on waking.
        while self.expires_at is not None:
            remaining = self.expires_at - time.time()
            if remaining <= 0:
                break
            await asyncio.sleep(remaining)
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def disconnect(self, code: int) -> None:
        """Leave the groups when the socket goes away."""
        await self.leave()

    async def leave(self) -> None:
        """Stop the expiry timer, stop counting this client, leave groups (once)."""
        if self.expiry_task is not None:
            self.expiry_task.cancel()
            self.expiry_task = None
        if not self.joined:
            return
        self.joined = False
        get_registry().remove()
        try:
            await get_fanout().leave(self)
            await self.channel_layer.group_discard(
                user_group(self.scope["user"].pk), self.channel_name
            )
        except (RedisError, OSError) as error:
            logger.warning("Could not leave group on disconnect: %s", error)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        """Answer a client frame: pong, auth renewal, or an error message."""
        if not self.authorized:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data)
        if size > settings.METRICS_WS_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        if not self.bucket.allow():
            await self.close(code=CLOSE_POLICY_VIOLATION)
            return
        if text_data is None:
            await self.send_error("binary frames are not supported; send JSON text")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("invalid JSON")
            return
        if not isinstance(content, dict):
            await self.send_error('expected a JSON object with a "type" field')
            return
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "auth":
            await self.renew(content.get("token"))
        elif not isinstance(kind, str):
            await self.send_error('missing "type": expected a string such as "ping"')
        else:
            await self.send_error(f"unknown message type {kind[:MAX_ECHOED_TYPE]!r}")

    async def renew(self, token: object) -> None:
        """Extend the socket's life with a new access token of the same user."""
        found = await check_token(token)
        if found is None or found.user.pk != self.scope["user"].pk:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if not await self.may_watch(found.user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.expires_at = found.expires_at
        expires = format_timestamp(datetime.fromtimestamp(found.expires_at, tz=UTC))
        await self.send_json({"type": "auth", "expires": expires})

    async def send_error(self, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_json({"type": "error", "message": message})

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run the message's handler.

        Unlike Channels' own dispatch, no database housekeeping before each
        message: every query here runs through database_sync_to_async, which
        closes stale connections itself, so a per-message thread hop buys nothing.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send_snapshot(self, published_at: float | None, text: str) -> None:
        """Send a broadcast snapshot (already JSON); called by this process's Fanout."""
        if self.held is not None:
            self.held.append((published_at, text))
            return
        if self.sent_on_connect is not None:
            # Published between joining the group and reading the latest snapshot?
            repeated = published_at is not None and published_at <= self.sent_on_connect
            self.sent_on_connect = None
            if repeated:
                return
        await self.base_send({"type": "websocket.send", "text": text})

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The user was deactivated or deleted: close with 4001."""
        await self.close(code=CLOSE_UNAUTHORIZED)
