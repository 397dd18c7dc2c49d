"""One member of the group `metrics` per web process, writing to all its sockets.

With a thousand sockets in a process, a channel-layer message and a consumer
dispatch per socket cost far more than the sending itself. Instead each process
joins the group once: a snapshot event arrives once, its text is wrapped once as a
SharedText (framed once by monitor.webserver), and written straight to every
local socket. Any other event sent to the group still reaches every consumer as a
message on its own channel, exactly as if it were a member itself.
"""

import asyncio
import logging
from typing import Any, Protocol

from channels.layers import get_channel_layer

from metrics.loop_local import LoopLocal
from metrics.publisher import EVENT_TYPE, GROUP
from monitor.frames import SharedText

logger = logging.getLogger(__name__)


class Member(Protocol):
    """A socket that receives the group's events (metrics.consumers.MetricsConsumer)."""

    channel_name: str

    async def send_snapshot(self, published_at: float | None, text: str) -> None: ...


class Fanout:
    """This process's membership of the group `metrics`, shared by its sockets."""

    def __init__(self) -> None:
        self.members: set[Member] = set()
        self.channel_layer = get_channel_layer()
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    async def join(self, member: Member) -> None:
        """Start delivering the group's events to `member`.

        The first join makes the process a member of the group; if Redis cannot
        be reached, it raises and the next join tries again.
        """
        async with self.lock:
            if self.channel is None:
                channel = await self.channel_layer.new_channel()
                await self.channel_layer.group_add(GROUP, channel)
                self.channel = channel
                self.task = asyncio.create_task(self.receive_forever(channel))
            self.members.add(member)

    async def leave(self, member: Member) -> None:
        """Stop delivering to `member`; the last to leave takes the process out."""
        self.members.discard(member)
        async with self.lock:
            if self.members or self.channel is None:
                return
            channel, self.channel = self.channel, None
            self.task.cancel()
            self.task = None
            await self.channel_layer.group_discard(GROUP, channel)

    async def receive_forever(self, channel: str) -> None:
        """Deliver each event of the group to the members, for the process's life."""
        while True:
            event = await self.channel_layer.receive(channel)
            try:
                await self.deliver(event)
            except Exception:
                logger.exception("Could not deliver a %r event", event.get("type"))

    async def deliver(self, event: dict[str, Any]) -> None:
        """Write a snapshot to every member; forward any other event to each."""
        if event.get("type") != EVENT_TYPE:
            for member in list(self.members):
                await self.channel_layer.send(member.channel_name, event)
            return
        text = event.get("text")
        if not isinstance(text, str):
            logger.warning("Dropped a snapshot event without text")
            return
        published_at = event.get("ts")
        shared = SharedText(text)
        for member in list(self.members):
            try:
                await member.send_snapshot(published_at, shared)
            except Exception:
                # One broken socket must not keep the snapshot from the others.
                logger.exception("Could not send a snapshot to one socket")


_fanouts = LoopLocal(Fanout)


def get_fanout() -> Fanout:
    """Return this event loop's (this process's) membership of the group."""
    return _fanouts.get()
