"""This process's fleet viewers and the fleet events they get.

The process's Fanout (metrics.fanout) is a member of the fleet group while it
has fleet viewers, and hands each fleet event here once. The viewers are grouped
by the set of hosts their users may see (metrics.access, remembered per process,
asked once per distinct user per event); each distinct set gets one frame,
serialised and wrapped as a SharedText once (framed once by runner.webserver)
and written to each of its sockets. An event that is not newer than the last one
received (a second builder of the same tick) is dropped, and a socket never gets
a frame that is not newer than the last it got (the one it was given on connect).

The process counts as one viewer (metrics.viewers) of each host that its fleet
viewers may see, so that those hosts send at their live interval, as they do
for a viewer of each."""

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, Protocol

from core import instruments
from core.frames import SharedText
from core.singleflight import SingleFlight
from metrics.access import cached_visible_hosts
from metrics.fleet import fleet_frame, is_fleet_event
from metrics.fleetbuilder import FleetBuilder, build_fleet_event, fleet_interval
from metrics.viewers import get_registry

logger = logging.getLogger(__name__)


class FleetMember(Protocol):
    """A socket that receives the fleet frame (metrics.fleetconsumers)."""

    user_id: str

    async def send_fleet(self, built_at: float, text: str) -> bool: ...

    async def dispatch(self, message: dict[str, Any]) -> None: ...


async def visible_to(member: FleetMember) -> frozenset[str]:
    """The hosts a fleet viewer's user may see."""
    return await cached_visible_hosts(member.user_id)


class FleetFanout:
    """This process's fleet sockets, the last fleet event it received, and its
    turn at building them."""

    def __init__(self, channel_layer: Any) -> None:
        self.members: set[FleetMember] = set()
        # The last fleet event received from the group.
        self.latest: dict[str, Any] | None = None
        # The last one built here for connecting sockets (never broadcast: a
        # periodic event built just before it must still reach the others).
        self.fresh: dict[str, Any] | None = None
        self.reads: SingleFlight[dict[str, Any]] = SingleFlight()
        self.builder = FleetBuilder(channel_layer)
        # The hosts this process counts itself a viewer of, for its fleet viewers.
        self.watched: frozenset[str] = frozenset()

    def watch(self, hosts: frozenset[str]) -> None:
        """Count this process as one viewer of each of `hosts`, and of no other
        host, for its fleet viewers."""
        registry = get_registry()
        for host in hosts - self.watched:
            registry.add(host)
        for host in self.watched - hosts:
            registry.remove(host)
        self.watched = hosts

    async def current(self, not_before: float | None = None) -> dict[str, Any]:
        """The fleet event for a socket connecting now: the newest one received
        or built here, if built within an interval, else one built from a fresh
        read (shared by the connects that overlap, if sent no earlier than
        `not_before`, a time.monotonic() value)."""
        known = [event for event in (self.latest, self.fresh) if event is not None]
        newest = max(known, key=lambda event: event["ts"], default=None)
        if newest is not None and time.time() - newest["ts"] <= fleet_interval():
            return newest
        self.fresh = await self.reads.run("fleet", build_fleet_event, not_before)
        return self.fresh

    async def deliver(self, event: dict[str, Any]) -> None:
        """Write a new fleet event to every fleet socket here, framed once per
        distinct set of visible hosts."""
        if not is_fleet_event(event):
            logger.warning("Dropped a fleet event without its entries")
            return
        if self.latest is not None and event["ts"] <= self.latest["ts"]:
            return
        self.latest = event
        members = list(self.members)
        by_user: dict[str, list[FleetMember]] = defaultdict(list)
        for member in members:
            by_user[member.user_id].append(member)
        # At once, not one after the other: users remembered since one storm of
        # connects are forgotten together, and their reads then overlap.
        answers = await asyncio.gather(
            *(visible_to(viewers[0]) for viewers in by_user.values()),
            return_exceptions=True,
        )
        by_set: dict[frozenset[str], list[FleetMember]] = defaultdict(list)
        for viewers, visible in zip(by_user.values(), answers, strict=True):
            if isinstance(visible, BaseException):
                logger.error("Could not read a user's hosts", exc_info=visible)
                continue
            by_set[visible].extend(viewers)
        self.watch(frozenset().union(*by_set))
        written = 0
        for visible, viewers in by_set.items():
            shared = SharedText(fleet_frame(event, visible))
            for member in viewers:
                if member not in self.members:
                    continue
                try:
                    written += await member.send_fleet(event["ts"], shared)
                except Exception:
                    logger.exception("Could not send the fleet frame to one socket")
        instruments.fleet_broadcast(event["ts"], len(by_set), written)
