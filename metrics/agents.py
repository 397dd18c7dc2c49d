"""The agent socket, /api/ws/agent: a host's agent sends its snapshots here
(docs/agent-protocol.md), and they go to the host's viewers and history.

One connection per host: a newer one replaces the older, which is closed with
4010. The host comes from the token, checked once at connect; a token rotated or
a host disabled or removed later closes the socket with 4001 (metrics.hostevents
tells the connection, which checks again).
"""

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from agent.protocol import (
    BACKFILL_FRAME_BURST,
    BACKFILL_FRAMES_PER_SECOND,
    LIVE_FRAME_BURST,
    LIVE_FRAMES_PER_INTERVAL,
    MAX_FRAME_BYTES,
)
from agent.snapshots import build_snapshot
from core import closes, instruments
from core.bounds import INTERVAL_SECONDS
from core.dispatch import DirectDispatch
from core.scopes import bearer_credentials, header_value, query_value
from metrics.agentauth import find_agent_host, is_current_agent_host
from metrics.events import (
    AGENT_REPLACED,
    agent_group,
    host_group,
    make_event,
    make_host_event,
    serialise,
)
from metrics.hoststate import LOST, HostLease, load_host_state
from metrics.ingest import Snapshot, SnapshotError, parse_frame
from metrics.ratelimit import TokenBucket
from metrics.store import LATEST_TTL_INTERVALS, publish_snapshot, store_backfill
from metrics.viewers import count_viewers

logger = logging.getLogger(__name__)

# How often the connection looks whether anybody watches its host, and renews its
# lease (metrics.hoststate.LEASE_SECONDS): while idle, often enough that the first
# viewer makes the agent live within a second; while live, seldom (the last
# viewer's leaving may take that long to idle the agent).
VIEWER_POLL = 0.5
LIVE_POLL = 2.0

REDIS_ERRORS = (RedisError, OSError)


def requested_interval(scope: dict) -> tuple[float, str | None]:
    """The live interval the agent asked for (?interval=S), else METRICS_INTERVAL,
    and what was wrong with what it asked for, if anything."""
    raw = query_value(scope, "interval")
    if raw is None:
        return settings.METRICS_INTERVAL, None
    try:
        return INTERVAL_SECONDS.parse(raw, unit=" seconds"), None
    except ValueError as error:
        return (
            settings.METRICS_INTERVAL,
            f'"interval" {error}; using {settings.METRICS_INTERVAL:g}',
        )


def to_millisecond(moment: float) -> float:
    """A time cut to the millisecond, as timestamps are written."""
    return math.floor(moment * 1000) / 1000


async def refuse_without_redis(receive, send) -> None:
    """Accept the handshake, then close with 1011 "data store unavailable": what an
    agent is told when the server cannot reach Redis as it connects."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    close = closes.DATA_STORE_UNAVAILABLE
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": close.code, "reason": close.reason})


class AgentConsumer(DirectDispatch, AsyncWebsocketConsumer):
    """One agent's connection: hello and config frames out, snapshots in."""

    host: str | None = None
    token_hash = ""
    lease: HostLease | None = None
    watcher: asyncio.Task | None = None
    joined = False
    replaced = False
    live = False
    # This connection's claim on its host (metrics.hoststate): a newer one is greater.
    generation = 0
    # The last live timestamp stored (seconds): the next must be later.
    last_ts = 0.0
    # Whether the host's clock was off at its last live snapshot.
    clock_skew = False

    async def __call__(self, scope, receive, send) -> None:
        """Serve the connection; refused with 1011 if Redis is down as it begins.

        Channels makes the connection's channel (a Redis subscription) before it
        reads the handshake, so connect() cannot catch that failure: it would reach
        daphne, which answers the handshake with HTTP 500.
        """
        try:
            await super().__call__(scope, receive, send)
        except REDIS_ERRORS as error:
            if getattr(self, "base_send", None) is not None:
                raise  # The channel was made: this failed later, not on connect.
            logger.warning("Redis unavailable on an agent's connect: %s", error)
            await refuse_without_redis(receive, send)

    async def connect(self) -> None:
        """Accept, then check the token; close with 4001 if it names no enabled
        host (a close before accepting would be an HTTP 403 that says nothing)."""
        await self.accept()
        host, refusal = await database_sync_to_async(find_agent_host)(
            bearer_credentials(header_value(self.scope, b"authorization"))
        )
        if refusal is not None:
            # The reason only: never the token, nor any part of it.
            logger.info("Refused an agent's connection: %s", refusal.reason)
            await self.close(code=refusal.code, reason=refusal.reason)
            return
        self.interval, problem = requested_interval(self.scope)
        self.idle_interval = settings.METRICS_IDLE_INTERVAL
        self.live_bucket = TokenBucket(
            LIVE_FRAMES_PER_INTERVAL / self.interval, LIVE_FRAME_BURST
        )
        self.backfill_bucket = TokenBucket(
            BACKFILL_FRAMES_PER_SECOND, BACKFILL_FRAME_BURST
        )
        try:
            await self.take_host(host.name)
        except REDIS_ERRORS as error:
            logger.warning("Redis unavailable on an agent's connect: %s", error)
            await self.close_with(closes.DATA_STORE_UNAVAILABLE)
            return
        self.host, self.token_hash = host.name, host.token_hash
        instruments.agents_connected.inc()
        await self.send_frame({"type": "hello", "host": host.name, **self.cadence()})
        if problem:
            await self.send_error(problem)
        self.watcher = asyncio.create_task(self.watch_viewers())
        logger.info("Agent of host %s connected", host.name)

    async def take_host(self, host: str) -> None:
        """Join the host's agent group, take the host's lease, replace any older
        connection, and read where its live timestamps stand."""
        group = agent_group(host)
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined = True
        self.live = await count_viewers(host) > 0
        self.lease = HostLease(host, self.channel_name)
        self.generation = await self.lease.claim(
            self.interval, self.idle_interval, self.live
        )
        # The channel layer may deliver this to a connection that joined after it
        # was sent: the generation tells the older connection from the newer.
        await self.channel_layer.group_send(
            group, {"type": AGENT_REPLACED, "generation": self.generation}
        )
        state = await load_host_state(host)
        self.last_ts = state.last_seen or 0.0
        self.clock_skew = state.clock_skew

    def cadence(self) -> dict[str, Any]:
        """What the agent is asked to do now: the fields of hello and config."""
        return {
            "interval": self.interval,
            "live": self.live,
            "idle_interval": self.idle_interval,
        }

    async def watch_viewers(self) -> None:
        """Tell the agent when its host's first viewer comes or its last goes, and
        keep the lease on the host while connected: every VIEWER_POLL seconds
        while idle (a first viewer makes it live within a second), every
        LIVE_POLL while live."""
        while True:
            await asyncio.sleep(LIVE_POLL if self.live else VIEWER_POLL)
            try:
                viewers = await self.lease.renew_counting()
                if viewers == LOST:
                    # Redis restarted without its data: take the host again.
                    await self.lease.claim(self.interval, self.idle_interval, self.live)
                    continue
            except REDIS_ERRORS as error:
                logger.warning(
                    "Could not count the viewers of %s: %s", self.host, error
                )
                continue
            if viewers is None:
                continue  # A newer connection took the host; its event is on the way.
            if (viewers > 0) != self.live:
                self.live = viewers > 0
                await self.send_frame({"type": "config", **self.cadence()})

    async def disconnect(self, code: int) -> None:
        """Give the host up: its viewers learn that it went offline, unless a
        newer connection of the same host has taken over."""
        if self.watcher is not None:
            self.watcher.cancel()
        if self.host is None:
            return
        instruments.agents_connected.dec()
        try:
            if self.joined:
                self.joined = False
                await self.channel_layer.group_discard(
                    agent_group(self.host), self.channel_name
                )
            if not self.replaced and await self.lease.release():
                await self.channel_layer.group_send(
                    host_group(self.host), make_host_event(self.host, online=False)
                )
        except REDIS_ERRORS as error:
            logger.warning(
                "Could not record that %s's agent left: %s", self.host, error
            )
        logger.info("Agent of host %s disconnected (%s)", self.host, code)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        """Check a frame and store the snapshot it carries; or answer with an error
        frame (nothing stored), or close when over a limit."""
        if self.host is None:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data)
        if size > MAX_FRAME_BYTES:
            instruments.snapshot_rejected("too_big")
            await self.close_with(closes.AGENT_FRAME_TOO_BIG)
            return
        try:
            if text_data is None:
                raise SnapshotError("binary frames are not supported; send JSON text")
            snapshot = parse_frame(text_data)
        except SnapshotError as error:
            if not self.live_bucket.allow():
                instruments.snapshot_rejected("too_many")
                await self.close_with(closes.TOO_MANY_SNAPSHOTS)
                return
            instruments.snapshot_rejected("invalid")
            await self.send_error(str(error))
            return
        bucket = self.backfill_bucket if snapshot.backfill else self.live_bucket
        if not bucket.allow():
            instruments.snapshot_rejected("too_many")
            await self.close_with(closes.TOO_MANY_SNAPSHOTS)
            return
        try:
            if snapshot.backfill:
                await self.store_backfill(snapshot)
            else:
                await self.publish(snapshot)
        except REDIS_ERRORS as error:
            # The agent keeps what it takes while disconnected and sends it again
            # as backfill: better than dropping snapshots into a Redis that is gone.
            logger.warning("Redis unavailable for %s's snapshot: %s", self.host, error)
            instruments.snapshot_rejected("data_store_unavailable")
            await self.close_with(closes.DATA_STORE_UNAVAILABLE)

    async def publish(self, snapshot: Snapshot) -> None:
        """Store a live snapshot and send it to the host's viewers, stamped with the
        time it arrived if the host's clock is off, and always later than the last."""
        now = time.time()
        taken_at = snapshot.taken_at
        self.clock_skew = abs(taken_at - now) > settings.METRICS_MAX_CLOCK_SKEW
        if self.clock_skew:
            taken_at = now
        taken_at = to_millisecond(taken_at)
        if taken_at == self.last_ts and not self.clock_skew:
            instruments.snapshot_rejected("duplicate")
            return  # this very snapshot again: it is stored already
        if taken_at <= self.last_ts:
            taken_at = to_millisecond(max(now, self.last_ts + 0.001))
        message = build_snapshot(
            snapshot.data, datetime.fromtimestamp(taken_at, tz=UTC)
        )
        event = make_event(message, taken_at, self.host, self.interval)
        period = self.interval if self.live else self.idle_interval or self.interval
        await publish_snapshot(
            self.channel_layer,
            event,
            ttl=LATEST_TTL_INTERVALS * period,
            clock_skew=self.clock_skew,
        )
        self.last_ts = taken_at
        instruments.snapshots_ingested.labels("live").inc()

    async def store_backfill(self, snapshot: Snapshot) -> None:
        """Put a snapshot taken while the agent was away into the host's history
        only: not when the host's clock is off (it cannot be placed), nor when it
        is older than the history keeps."""
        now = time.time()
        taken_at = to_millisecond(snapshot.taken_at)
        if self.clock_skew or taken_at > now + settings.METRICS_MAX_CLOCK_SKEW:
            instruments.snapshot_rejected("clock_skew")
            return
        if taken_at < now - settings.METRICS_HISTORY_SECONDS:
            instruments.snapshot_rejected("too_old")
            return
        message = build_snapshot(
            snapshot.data, datetime.fromtimestamp(taken_at, tz=UTC)
        )
        await store_backfill(
            self.host, taken_at, serialise({**message, "host": self.host})
        )
        instruments.snapshots_ingested.labels("backfill").inc()

    async def agent_replaced(self, event: dict[str, Any]) -> None:
        """A newer connection of the same host: close this one with 4010."""
        generation = event.get("generation")
        if (
            self.host is not None
            and isinstance(generation, int)
            and generation > self.generation
        ):
            self.replaced = True
            await self.close_with(closes.AGENT_REPLACED)

    async def agent_recheck(self, event: dict[str, Any]) -> None:
        """The host changed: close with 4001 if its token or state no longer let
        this connection in."""
        if self.host is None:
            return
        refusal = await database_sync_to_async(is_current_agent_host)(
            self.host, self.token_hash
        )
        if refusal is not None:
            await self.close_with(refusal)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send a frame of the agent protocol."""
        await self.send(text_data=serialise(frame))

    async def send_error(self, message: str) -> None:
        """Tell the agent what was wrong with its frame; the socket stays open."""
        await self.send_frame({"type": "error", "message": message})

    async def close_with(self, close: closes.Close) -> None:
        """Close the socket with a code of ours and its reason."""
        with contextlib.suppress(Exception):
            await self.close(code=close.code, reason=close.reason)
