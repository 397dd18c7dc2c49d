"""One member of the group `metrics` per web process, writing to all its sockets.

With a thousand sockets in a process, a channel-layer message and a consumer
dispatch per socket cost far more than the sending itself, and a channel per
socket costs a Redis subscription on every connect. Instead the process joins
the group once, for all its sockets: a snapshot event arrives once, its text is
wrapped once as a SharedText (framed once by runner.webserver) and written
straight to every local socket. Any other event sent to the group is dispatched
to every consumer, as if each were a member itself.

The same membership hears of revoked users (accounts.revocation): their sockets
here close with 4001, and it tells the token sessions (accounts.sessions) when
revocations begin and cease to reach the process, and whom they revoke.
"""

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from channels.layers import get_channel_layer

from accounts.revocation import (
    REVOCATION_GROUP,
    REVOKED_EVENT,
    USER_REVOKED_EVENT,
    revocation_close,
)
from accounts.sessions import revocations_heard, revocations_unheard, user_revoked
from core.frames import SharedText
from core.loop_local import LoopLocal
from metrics.events import EVENT_TYPE, GROUP

logger = logging.getLogger(__name__)

GROUPS = (GROUP, REVOCATION_GROUP)


class Member(Protocol):
    """A socket that receives the group's events (metrics.consumers.MetricsConsumer)."""

    user_id: str

    async def send_snapshot(self, published_at: float | None, text: str) -> None: ...

    async def dispatch(self, message: dict[str, Any]) -> None: ...


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

        The first join makes the process a member of the groups; if Redis cannot
        be reached, it raises and the next join tries again.
        """
        async with self.lock:
            if self.channel is None:
                channel = await self.channel_layer.new_channel()
                # Reading from the start: cancelling it also drops the channel.
                task = asyncio.create_task(self.receive_forever(channel))
                try:
                    for group in GROUPS:
                        await self.channel_layer.group_add(group, channel)
                except BaseException:
                    task.cancel()
                    with contextlib.suppress(Exception):
                        await self.discard(channel)
                    raise
                self.channel, self.task = channel, task
                revocations_heard()
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
            revocations_unheard()
            await self.discard(channel)

    async def discard(self, channel: str) -> None:
        """Take a channel out of the groups (it is in none of them on return)."""
        for group in GROUPS:
            await self.channel_layer.group_discard(group, channel)

    async def receive_forever(self, channel: str) -> None:
        """Deliver each event of the groups to the members until cancelled."""
        while True:
            try:
                # A message that cannot be decoded raises here; the next may not.
                event = await self.channel_layer.receive(channel)
                await self.deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Could not deliver an event of the group")

    async def deliver(self, event: object) -> None:
        """Write a snapshot to every member; close a revoked user's sockets; pass
        any other event to every member's handler."""
        if not isinstance(event, dict):
            logger.warning("Dropped a group message that is not an event: %r", event)
            return
        kind = event.get("type")
        if kind == EVENT_TYPE:
            await self.broadcast(event)
        elif kind == USER_REVOKED_EVENT:
            user_id = str(event.get("user_id"))
            user_revoked(user_id)
            revoked = [member for member in self.members if member.user_id == user_id]
            close = revocation_close(event)
            await self.dispatch(revoked, {"type": REVOKED_EVENT, "close": close})
        else:
            await self.dispatch(list(self.members), event)

    async def broadcast(self, event: dict[str, Any]) -> None:
        """Send a snapshot event's text, framed once, to every member."""
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

    async def dispatch(self, members: list[Member], event: dict[str, Any]) -> None:
        """Run each member's handler for the event (one log line if any fail)."""
        failures: list[Exception] = []
        for member in members:
            try:
                await member.dispatch(event)
            except Exception as error:
                failures.append(error)
        if failures:
            logger.error(
                "%d of %d consumers failed on a %r event",
                len(failures),
                len(members),
                event.get("type"),
                exc_info=failures[0],
            )


_fanouts = LoopLocal(Fanout)


def get_fanout() -> Fanout:
    """Return this event loop's (this process's) membership of the group."""
    return _fanouts.get()
