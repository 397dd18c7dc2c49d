"""The metrics WebSocket: authenticated clients receive every snapshot of a host."""

import logging
import time
from typing import Any

from redis.exceptions import RedisError

from core import closes, instruments
from core.scopes import query_value
from metrics.access import choose_visible_host, get_access
from metrics.fanout import get_fanout
from metrics.resume import Replayed, parse_resume, replay_budget, resume_frame
from metrics.sockets import ViewerConsumer
from metrics.store import load_latest, load_missed
from metrics.viewers import get_registry

logger = logging.getLogger(__name__)


class MetricsConsumer(ViewerConsumer):
    """Streams one host's snapshots to one authenticated client and answers its
    frames.

    It has no channel of its own: the process's Fanout is the member of the
    host's group (and of the revocations group) for all its sockets of that host,
    which saves a Redis subscription per connect and a message per socket per
    event.
    """

    # The host watched (?host=NAME, else the default host); set before joining.
    host = ""
    # Publish time of the snapshot sent on connect: the first broadcast may repeat it.
    sent_on_connect: float | None = None
    # A resumed socket's snapshots sent from the held stream: broadcasts may repeat
    # them until the first newer one.
    replayed: Replayed | None = None
    # Broadcasts that arrive from joining until connect() has sent what it holds.
    held: list[tuple[float | None, str]] | None = None

    async def connect(self) -> None:
        """Join and accept; or accept and close with a code of core.closes.

        The socket joins before the handshake completes, so a client receives
        every snapshot published after it is open (and the latest before that;
        or, resuming with ?since=&epoch=, each one it missed: metrics.resume).
        """
        session = await self.authenticate()
        if session is None:
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
            if not await self.take_place():
                return
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
        if not await self.open_session(session):
            return
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

    async def leave(self) -> None:
        """Stop the expiry timer, stop counting this client, leave groups (once)."""
        await super().leave()
        if not self.joined:
            return
        self.joined = False
        get_registry().remove(self.host)
        try:
            await get_fanout().leave(self)
        except (RedisError, OSError) as error:
            logger.warning("Could not leave group on disconnect: %s", error)

    async def renewal_refusal(self, user) -> closes.Close | None:
        """Why a renewal closes the socket: as any viewer's, or 4004 if the user
        may no longer see the host (read again, whatever a signal missed)."""
        refused = await super().renewal_refusal(user)
        if refused is None:
            hosts, _ = await get_access().get(self.user_id, fresh=True)
            if self.host not in hosts:
                return closes.NO_SUCH_HOST
        return refused

    async def send_json(self, content: dict[str, Any], close: bool = False) -> None:
        """Send a frame of ours, naming the host it is about."""
        if self.host:
            content = {**content, "host": self.host}
        await super().send_json(content, close=close)

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
