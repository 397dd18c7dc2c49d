"""The fleet WebSocket: authenticated clients receive, on connect and then once per
interval, one entry per host that their user may see."""

import logging
import time

from redis.exceptions import RedisError

from core import closes
from metrics.fanout import get_fanout
from metrics.fleet import fleet_frame
from metrics.fleetfanout import visible_to
from metrics.sockets import ViewerConsumer

logger = logging.getLogger(__name__)


class FleetConsumer(ViewerConsumer):
    """Streams the fleet frame to one authenticated client and answers its frames.

    Like MetricsConsumer it has no channel of its own: the process's Fanout is
    the member of the fleet group for all its fleet sockets."""

    # Fleet frames that arrive from joining until connect() has sent the first.
    held: list[tuple[float, str]] | None = None
    # When the last frame sent was built: none built no later is sent again.
    sent_built_at = float("-inf")

    async def connect(self) -> None:
        """Join and accept, then send the fleet frame at once; or accept and close
        with 4001/4003/4029/1011 (core.closes), as the metrics socket does."""
        session = await self.authenticate()
        if session is None:
            return
        self.user_id = session.user_id
        fanout = get_fanout()
        try:
            if not await self.take_place():
                return
            self.held = []
            await fanout.join_fleet(self)
            self.joined = True
            joined_at = time.monotonic()
            if not await session.still_valid():
                await self.refuse(closes.USER_INACTIVE)
                return
            event = await fanout.fleet.current(not_before=joined_at)
        except (RedisError, OSError) as error:
            logger.warning("Redis unavailable on connect: %s", error)
            await self.refuse(closes.DATA_STORE_UNAVAILABLE)
            return
        visible = await visible_to(self)
        fanout.fleet.watch(fanout.fleet.watched | visible)
        if not await self.open_session(session):
            return
        await self.write(event["ts"], fleet_frame(event, visible))
        # Sent in order even if sending yields and more arrive meanwhile.
        while self.held:
            await self.write(*self.held.pop(0))
        self.held = None

    async def leave(self) -> None:
        """Stop the expiry timer, stop counting this client, leave the fleet (once)."""
        await super().leave()
        if not self.joined:
            return
        self.joined = False
        try:
            await get_fanout().leave_fleet(self)
        except (RedisError, OSError) as error:
            logger.warning("Could not leave the fleet group on disconnect: %s", error)

    async def send_fleet(self, built_at: float, text: str) -> bool:
        """Send a broadcast fleet frame (already JSON); called by this process's
        Fanout. Whether it was written now (not held until connected, nor a
        repeat of the one sent on connect)."""
        if self.held is not None:
            self.held.append((built_at, text))
            return False
        return await self.write(built_at, text)

    async def write(self, built_at: float, text: str) -> bool:
        """Write a frame unless one built at the same time or later was written."""
        if built_at <= self.sent_built_at:
            return False
        self.sent_built_at = built_at
        await self.base_send({"type": "websocket.send", "text": text})
        return True
