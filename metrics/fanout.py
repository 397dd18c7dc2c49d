"""One member of each watched host's group per web process, writing to all its
sockets of that host.

With a thousand sockets in a process, a channel-layer message and a consumer
dispatch per socket cost far more than the sending itself, and a channel per
socket costs a Redis subscription on every connect. Instead the process has one
channel, which joins a host's group (`metrics.<host>`) when the process's first
viewer of that host connects and leaves it with the last: a snapshot event
arrives once per process, its text is wrapped once as a SharedText (framed once
by runner.webserver) and written straight to every local socket of that host. Any
other event sent to a group is dispatched to every consumer, as if each were a
member itself.

The same channel hears of revoked users (accounts.revocation): their sockets
here close with 4001, and it tells the token sessions (accounts.sessions) when
revocations begin and cease to reach the process, and whom they revoke. It hears
of grant changes too (metrics.grants): it tells the process's HostAccess
(metrics.access) the same moments and whom a change concerns, and closes with
4004 the sockets of hosts their users may no longer see.

Fleet sockets (metrics.fleetconsumers) are members too: while the process has
any, the channel is in the fleet group, and each fleet event goes to
metrics.fleetfanout, which frames it once per distinct set of visible hosts;
revocations reach them as they reach the others.

It also tells a host's viewers when the host goes offline (its agent
disconnected, or no snapshot came for MISSED_INTERVALS of its intervals: a timer
per host, restarted by every snapshot) and when it comes back (its next snapshot)."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from accounts.revocation import (
    REVOCATION_GROUP,
    REVOKED_EVENT,
    USER_REVOKED_EVENT,
    revocation_close,
)
from accounts.sessions import revocations_heard, revocations_unheard, user_revoked
from core import closes, instruments
from core.frames import SharedText
from core.loop_local import LoopLocal
from metrics.access import get_access
from metrics.events import EVENT_TYPE, HOST_EVENT_TYPE, host_frame, host_group
from metrics.fleet import FLEET_EVENT_TYPE, FLEET_GROUP
from metrics.fleetfanout import FleetFanout, FleetMember
from metrics.grants import ACCESS_CHANGED_EVENT, read_access_event
from metrics.hoststate import MISSED_INTERVALS, HostState

logger = logging.getLogger(__name__)

# How often every socket's access is read again when AUTH_USER_CACHE_SECONDS is 0
# (nothing remembered): a change without a signal closes its sockets this soon.
SWEEP_SECONDS = 5.0
# Otherwise every this share of AUTH_USER_CACHE_SECONDS: what is remembered of
# each socket's user is read again before it lapses.
SWEEP_SHARE = 0.9

# Before a host's first snapshot reaches a process that has viewers of it, allow
# this much beyond MISSED_INTERVALS intervals: the time its agent takes to go live.
GOING_LIVE_GRACE = 1.0


class Member(Protocol):
    """A socket that receives its host's events (metrics.consumers.MetricsConsumer)."""

    user_id: str
    host: str

    async def send_snapshot(self, published_at: float | None, text: str) -> bool: ...

    async def send_host_state(self, text: str) -> None: ...

    async def dispatch(self, message: dict[str, Any]) -> None: ...


class Fanout:
    """This process's memberships: the revocations group while it has sockets, and
    the group of each host it has viewers of, shared by those viewers."""

    def __init__(self) -> None:
        self.members: dict[str, set[Member]] = {}
        self.channel_layer = get_channel_layer()
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        # Hosts this process has told its viewers are offline.
        self.offline: set[str] = set()
        # Per host: the timer that declares it offline when its snapshots stop.
        self.watchdogs: dict[str, asyncio.TimerHandle] = {}
        # The fleet viewers, and the fleet events they get.
        self.fleet = FleetFanout(self.channel_layer)
        # Re-checks of access running beside the delivery of events.
        self.jobs: set[asyncio.Task] = set()
        # The periodic re-check of every socket's access, while there are sockets.
        self.sweep: asyncio.Task | None = None
        # Whether the channel is in the fleet group (from the first fleet socket
        # until the last has left and the builder stopped).
        self.in_fleet = False

    async def join(self, member: Member) -> None:
        """Start delivering `member`'s host's events to it.

        The first join makes the process a member of the revocations group, the
        first of a host a member of that host's group; if Redis cannot be reached,
        it raises and the next join tries again.
        """
        async with self.lock:
            await self.open()
            host = member.host
            if host not in self.members:
                await self.channel_layer.group_add(host_group(host), self.channel)
                self.members[host] = set()
            self.members[host].add(member)

    async def leave(self, member: Member) -> None:
        """Stop delivering to `member`; the last of a host takes the process out of
        the host's group, the last of all out of every group."""
        viewers = self.members.get(member.host)
        if viewers is None or member not in viewers:
            return
        viewers.discard(member)
        async with self.lock:
            host = member.host
            if self.channel is None:
                return
            if host in self.members and not self.members[host]:
                del self.members[host]
                self.forget(host)
                await self.channel_layer.group_discard(host_group(host), self.channel)
            await self.close_if_idle()

    async def open(self) -> None:
        """Make the process's channel and join the revocations group, unless done
        (under the lock)."""
        if self.channel is not None:
            return
        channel = await self.channel_layer.new_channel()
        # Reading from the start: cancelling it also drops the channel.
        task = asyncio.create_task(self.receive_forever(channel))
        try:
            await self.channel_layer.group_add(REVOCATION_GROUP, channel)
        except BaseException:
            task.cancel()
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(REVOCATION_GROUP, channel)
            raise
        self.channel, self.task = channel, task
        revocations_heard()
        get_access().set_heard(True)
        self.sweep = asyncio.create_task(self.sweep_access())

    async def close_if_idle(self) -> None:
        """Drop the channel and leave the revocations group once the process has
        no sockets left (under the lock)."""
        if self.members or self.in_fleet:
            return
        channel, self.channel = self.channel, None
        self.task.cancel()
        self.task = None
        self.sweep.cancel()
        self.sweep = None
        revocations_unheard()
        get_access().set_heard(False)
        await self.channel_layer.group_discard(REVOCATION_GROUP, channel)

    async def join_fleet(self, member: FleetMember) -> None:
        """Start delivering fleet events to `member`; the first fleet socket makes
        the process a member of the fleet group and starts its builder."""
        async with self.lock:
            await self.open()
            if not self.in_fleet:
                await self.channel_layer.group_add(FLEET_GROUP, self.channel)
                self.in_fleet = True
                self.fleet.builder.start()
            self.fleet.members.add(member)

    async def leave_fleet(self, member: FleetMember) -> None:
        """Stop delivering fleet events to `member`; the last fleet socket takes the
        process out of the fleet group and stops its builder."""
        if member not in self.fleet.members:
            return
        self.fleet.members.discard(member)
        async with self.lock:
            if self.fleet.members or not self.in_fleet:
                return
            self.in_fleet = False
            self.fleet.watch(frozenset())
            await self.fleet.builder.stop()
            await self.channel_layer.group_discard(FLEET_GROUP, self.channel)
            await self.close_if_idle()

    def watch(self, host: str, interval: object, grace: float = 0.0) -> None:
        """(Re)start the timer that declares `host` offline if no snapshot of it
        comes within MISSED_INTERVALS intervals (and `grace`)."""
        self.stop_watching(host)
        if not isinstance(interval, int | float) or not interval > 0:
            return
        delay = MISSED_INTERVALS * interval + grace
        self.watchdogs[host] = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self.set_online(host, False))
        )

    async def greet(self, member: Member, state: HostState) -> None:
        """A member connected and its host's state was read: watch the host, if
        not yet watched (its first snapshot may take GOING_LIVE_GRACE more than
        its interval), and tell the member if the host is offline (a host never
        seen has nothing to go offline from: no frame for it)."""
        host = member.host
        if host in self.members and host not in self.watchdogs:
            self.watch(host, state.interval, GOING_LIVE_GRACE)
        if (state.known and not state.online) or host in self.offline:
            self.offline.add(host)
            await member.send_host_state(host_frame(host, online=False))

    def stop_watching(self, host: str) -> None:
        """Stop a host's timer, if it has one."""
        watchdog = self.watchdogs.pop(host, None)
        if watchdog is not None:
            watchdog.cancel()

    def forget(self, host: str) -> None:
        """Forget a host this process no longer has viewers of."""
        self.stop_watching(host)
        self.offline.discard(host)

    async def set_online(self, host: str, online: bool) -> None:
        """Tell the host's viewers here when it goes offline or comes back."""
        if host not in self.members or (host not in self.offline) == online:
            return
        if online:
            self.offline.discard(host)
        else:
            self.offline.add(host)
        frame = SharedText(host_frame(host, online))
        for member in list(self.members.get(host, ())):
            try:
                await member.send_host_state(frame)
            except Exception:
                logger.exception("Could not tell one socket of its host's state")

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
        """Write a snapshot to its host's members; tell them when the host goes
        offline; close a revoked user's sockets, and those of hosts their users may
        no longer see; pass any other event to every member's handler."""
        if not isinstance(event, dict):
            logger.warning("Dropped a group message that is not an event: %r", event)
            return
        kind = event.get("type")
        if kind == EVENT_TYPE:
            await self.broadcast(event)
        elif kind == FLEET_EVENT_TYPE:
            await self.fleet.deliver(event)
        elif kind == HOST_EVENT_TYPE:
            host = event.get("host")
            if isinstance(host, str) and event.get("online") is False:
                self.stop_watching(host)
                await self.set_online(host, False)
        elif kind == USER_REVOKED_EVENT:
            user_id = str(event.get("user_id"))
            user_revoked(user_id)
            revoked = [m for m in self.everyone() if m.user_id == user_id]
            close = revocation_close(event)
            await self.dispatch(revoked, {"type": REVOKED_EVENT, "close": close})
        elif kind == ACCESS_CHANGED_EVENT:
            users, hosts = read_access_event(event)
            # Forgotten at once: the next event (a fleet frame) must not use them.
            get_access().forget(users)
            self.start(self.recheck_access(users, hosts))
        else:
            await self.dispatch(self.everyone(), event)

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        """Run a job beside the delivery of events (kept until done, its failure
        logged), so that a slow one holds no snapshot back."""
        task = asyncio.create_task(job)
        self.jobs.add(task)
        task.add_done_callback(self.finish)

    def finish(self, task: asyncio.Task) -> None:
        """A job ended: forget it, and log how it failed, if it did."""
        self.jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("A re-check of access failed", exc_info=task.exception())

    async def recheck_access(
        self,
        users: frozenset[str] | None,
        hosts: frozenset[str] | None,
        fresh: bool = False,
    ) -> None:
        """Close with 4004 the sockets here of the users named (None: all) of the
        hosts named (None: all) that they may no longer see (one lookup per user,
        however many sockets they have; read again from the database if
        `fresh`)."""
        members = [
            member
            for host, viewers in list(self.members.items())
            if hosts is None or host in hosts
            for member in viewers
            if users is None or member.user_id in users
        ]
        user_ids = {member.user_id for member in members}
        if fresh and users is None:
            # The fleet viewers' users too: their frames then find them remembered
            # instead of waiting for the database.
            user_ids |= {member.user_id for member in self.fleet.members}
        user_ids = sorted(user_ids)
        found = await asyncio.gather(
            *(get_access().get(user_id, fresh=fresh) for user_id in user_ids),
            return_exceptions=True,
        )
        visible = {}
        for user_id, answer in zip(user_ids, found, strict=True):
            if isinstance(answer, BaseException):
                logger.error("Could not re-check a user's hosts", exc_info=answer)
            else:
                visible[user_id] = answer[0]
        lost = [
            m
            for m in members
            if m.user_id in visible and m.host not in visible[m.user_id]
        ]
        close = {"type": REVOKED_EVENT, "close": closes.NO_SUCH_HOST}
        await self.dispatch(lost, close)

    async def sweep_access(self) -> None:
        """While the process has sockets: a little more often than every
        AUTH_USER_CACHE_SECONDS (or every SWEEP_SECONDS when nothing is
        remembered), read every socket's user's hosts again, so that a change no
        signal announced (a queryset update, raw SQL) closes the sockets it
        concerns in that time too, and what is remembered of them never lapses
        under a fleet frame."""
        while True:
            lifetime = settings.AUTH_USER_CACHE_SECONDS
            await asyncio.sleep(SWEEP_SHARE * lifetime or SWEEP_SECONDS)
            try:
                await self.recheck_access(None, None, fresh=True)
            except Exception:
                logger.exception("The sweep of access failed")

    def everyone(self) -> list[Member | FleetMember]:
        """Every socket of this process, of every host and of the fleet."""
        hosts = [member for viewers in self.members.values() for member in viewers]
        return [*hosts, *self.fleet.members]

    async def broadcast(self, event: dict[str, Any]) -> None:
        """Send a snapshot event's text, framed once, to its host's members."""
        text = event.get("text")
        host = event.get("host")
        if not isinstance(text, str) or not isinstance(host, str):
            logger.warning("Dropped a snapshot event without text or host")
            return
        self.watch(host, event.get("interval"))
        await self.set_online(host, True)
        published_at = event.get("ts")
        shared = SharedText(text)
        written = 0
        for member in list(self.members.get(host, ())):
            try:
                written += await member.send_snapshot(published_at, shared)
            except Exception:
                # One broken socket must not keep the snapshot from the others.
                logger.exception("Could not send a snapshot to one socket")
        instruments.snapshot_broadcast(event.get("sent", published_at), written)

    async def dispatch(
        self, members: list[Member | FleetMember], event: dict[str, Any]
    ) -> None:
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
