"""The metrics WebSocket: authenticated clients receive every snapshot of a host."""

import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from accounts.middleware import BEARER_PROTOCOL, get_socket_token
from accounts.sessions import TokenSession
from accounts.tokens import refusal
from core import closes, instruments
from core.dispatch import DirectDispatch
from core.scopes import query_value
from metrics.access import choose_visible_host
from metrics.fanout import get_fanout
from metrics.permissions import can_watch
from metrics.quotas import get_quota
from metrics.ratelimit import TokenBucket
from metrics.resume import Replayed, parse_resume, replay_budget, resume_frame
from metrics.store import load_latest, load_missed
from metrics.viewers import get_registry

logger = logging.getLogger(__name__)

MAX_ECHOED_TYPE = 40

# Not thread-sensitive: the checks of many sockets run in parallel on the thread
# pool instead of queueing on the one thread Django keeps for sync code.
check_permission = database_sync_to_async(can_watch, thread_sensitive=False)


class MetricsConsumer(DirectDispatch, AsyncJsonWebsocketConsumer):
    """Streams one host's snapshots to one authenticated client and answers its
    frames.

    It has no channel of its own: the process's Fanout is the member of the
    host's group (and of the revocations group) for all its sockets of that host,
    which saves a Redis subscription per connect and a message per socket per
    event.
    """

    # No channel-layer alias: Channels then makes no channel for each socket.
    channel_layer_alias = None
    joined = False
    user_id = ""
    # The host watched (?host=NAME, else the default host); set before joining.
    host = ""
    # Set once the user is known to be allowed; frames before that are ignored.
    authorized = False
    # Publish time of the snapshot sent on connect: the first broadcast may repeat it.
    sent_on_connect: float | None = None
    # A resumed socket's snapshots sent from the held stream: broadcasts may repeat
    # them until the first newer one.
    replayed: Replayed | None = None
    # Broadcasts that arrive from joining until connect() has sent what it holds.
    held: list[tuple[float | None, str]] | None = None
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

    async def connect(self) -> None:
        """Join and accept; or accept and close with a code of core.closes.

        The socket joins before the handshake completes, so a client receives
        every snapshot published after it is open (and the latest before that;
        or, resuming with ?since=&epoch=, each one it missed: metrics.resume).
        """
        session = TokenSession.for_socket(self)
        if session is None:
            await self.refuse(refusal(get_socket_token(self.scope)))
            return
        if not await self.may_watch(session.user):
            await self.refuse(closes.PERMISSION_REQUIRED)
            return
        requested = query_value(self.scope, "host")
        choice = await choose_visible_host(session.user_id, requested)
        host = choice.host
        if host is None:
            await self.refuse(
                closes.NO_SUCH_HOST if requested is not None else closes.NO_DEFAULT_HOST
            )
            return
        self.host = host
        self.user_id = session.user_id
        point, problem = parse_resume(self.scope)
        latest = missed = None
        try:
            if not await get_quota().open(self.user_id):
                await self.refuse(closes.SOCKET_QUOTA_EXCEEDED)
                return
            self.counted = True
            self.held = []
            await get_fanout().join(self)
            self.joined = True
            joined_at = time.monotonic()
            get_registry().add(host)
            if not await session.still_valid():
                await self.refuse(closes.USER_INACTIVE)
                return
            if not await choice.still_visible():
                await self.refuse(closes.NO_SUCH_HOST)
                return
            if point is not None:
                missed = await load_missed(host, *point, replay_budget())
                state = missed.state
            if missed is None or not missed.recovered:
                latest, state = await load_latest(host, not_before=joined_at)
        except (RedisError, OSError) as error:
            logger.warning("Redis unavailable on connect: %s", error)
            await self.refuse(closes.DATA_STORE_UNAVAILABLE)
            return
        # Counted before the handshake completes: a client that sees it open is.
        self.counted_open = True
        instruments.viewer_sockets_open.inc()
        await self.accept(self.subprotocol())
        self.accepted = True
        if self.revoked is not None:
            await self.close_with(self.revoked)
            return
        self.authorized = True
        self.bucket = TokenBucket(
            settings.METRICS_WS_MESSAGES_PER_SECOND, settings.METRICS_WS_MESSAGE_BURST
        )
        self.session = session
        session.start()
        if problem is not None:
            await self.send_error(problem)
        if missed is not None:
            await self.send_json(resume_frame(missed))
        if missed is not None and missed.recovered:
            for text in missed.texts:
                await self.send(text_data=text)
            self.replayed = Replayed.of(point, missed)
        elif latest is not None:
            await self.send(text_data=latest["text"])
            self.sent_on_connect = latest["ts"]
        # Sent in order even if sending yields and more arrive meanwhile.
        while self.held:
            published_at, text = self.held.pop(0)
            if not self.sent_already(published_at, text):
                await self.send(text_data=text)
                instruments.snapshots_delivered.inc()
        self.held = None
        await get_fanout().greet(self, state)

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

    async def disconnect(self, code: int) -> None:
        """Leave the groups when the socket goes away."""
        await self.leave()

    async def leave(self) -> None:
        """Stop the expiry timer, stop counting this client, leave groups (once)."""
        if self.session is not None:
            self.session.stop()
        if self.counted_open:
            self.counted_open = False
            instruments.viewer_sockets_open.dec()
        if self.counted:
            self.counted = False
            await get_quota().close(self.user_id)
        if not self.joined:
            return
        self.joined = False
        get_registry().remove(self.host)
        try:
            await get_fanout().leave(self)
        except (RedisError, OSError) as error:
            logger.warning("Could not leave group on disconnect: %s", error)

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

    async def send_json(self, content: dict[str, Any], close: bool = False) -> None:
        """Send a frame of ours, naming the host it is about."""
        if self.host:
            content = {**content, "host": self.host}
        await super().send_json(content, close=close)

    async def send_error(self, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_json({"type": "error", "message": message})

    async def send_snapshot(self, published_at: float | None, text: str) -> bool:
        """Send a broadcast snapshot (already JSON); called by this process's Fanout.
        Whether it was written now (not held until connected, nor a repeat)."""
        if self.held is not None:
            self.held.append((published_at, text))
            return False
        # Only the first broadcast after connecting can repeat the one sent then;
        # after resuming, those until the first newer than the replayed ones.
        repeated = self.sent_already(published_at, text)
        self.sent_on_connect = None
        if repeated:
            return False
        self.replayed = None
        await self.base_send({"type": "websocket.send", "text": text})
        return True

    async def send_host_state(self, text: str) -> None:
        """Tell the client its host went offline or came back (a ready frame)."""
        if self.held is None:
            await self.base_send({"type": "websocket.send", "text": text})

    def sent_already(self, published_at: float | None, text: str) -> bool:
        """Whether a snapshot is one replayed on resuming; or the one sent on
        connect, or older than it."""
        if self.replayed is not None:
            return self.replayed.covers(text)
        return (
            self.sent_on_connect is not None
            and published_at is not None
            and published_at <= self.sent_on_connect
        )

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The user was deactivated or deleted, or changed password (close 4001),
        or may no longer see the host (4004, metrics.access)."""
        close = event.get("close", closes.USER_INACTIVE)
        if self.accepted:
            await self.close_with(close)
        else:
            # Closing before the handshake completes would reach a browser as 403.
            self.revoked = close
