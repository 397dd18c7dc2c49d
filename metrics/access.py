"""Which hosts a user may see: superusers every enabled host, other users the
enabled hosts granted to them or to one of their groups.

A web process remembers each user's hosts (HostAccess) while it hears of grant
changes (metrics.grants sends them to the group every process with sockets is a
member of): an entry is trusted for AUTH_USER_CACHE_SECONDS, lookups of one user
that overlap share one query, and a change forgets the users it names at once.
A process that does not hear changes reads the database on every lookup.

METRICS_REQUIRED_PERMISSION (metrics.permissions) applies on top of this."""

import time
from collections.abc import Iterable
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Exists, Q

from accounts.tokens import user_cache_seconds
from core.loop_local import LoopLocal
from core.remembered import Remembered
from core.singleflight import SingleFlight
from metrics.directory import get_directory
from metrics.models import Host


def visible_host_names(user_id: object) -> frozenset[str]:
    """The names of the enabled hosts the user with this id may see, from the
    database (one query; whether the user is a superuser is read there too)."""
    superuser = get_user_model()._default_manager.filter(pk=user_id, is_superuser=True)
    hosts = Host.objects.filter(enabled=True).filter(
        Q(Exists(superuser)) | Q(viewers__pk=user_id) | Q(viewer_groups__user=user_id)
    )
    return frozenset(hosts.values_list("name", flat=True).distinct())


def visible_hosts(user: AbstractBaseUser) -> frozenset[str]:
    """The names of the enabled hosts `user` may see, from the database."""
    if user.pk is None:
        return frozenset()
    return visible_host_names(user.pk)


async def visible_hosts_async(user: AbstractBaseUser) -> frozenset[str]:
    """visible_hosts(), off the event loop (uncached: see cached_visible_hosts)."""
    return await database_sync_to_async(visible_hosts, thread_sensitive=False)(user)


read_visible_hosts = database_sync_to_async(visible_host_names, thread_sensitive=False)


class HostAccess:
    """This process's memory of which hosts each user (by id) may see."""

    def __init__(self) -> None:
        self.hosts: Remembered[frozenset[str]] = Remembered(user_cache_seconds)
        self.lookups: SingleFlight[frozenset[str]] = SingleFlight()
        # Bumped whenever what was read before may be stale: a check made in an
        # earlier generation is made again (HostChoice.still_visible).
        self.generation = 0
        # Whether grant changes reach this process (metrics.fanout): only then is
        # what it read trusted.
        self.heard = False

    async def get(
        self, user_id: object, fresh: bool = False
    ) -> tuple[frozenset[str], int]:
        """The hosts the user may see (read again if `fresh`), and the generation
        they hold for."""
        key = str(user_id)
        while True:
            generation, now = self.generation, time.monotonic()
            cached = self.hosts.get(key)
            if cached is not None and self.heard and not fresh:
                return cached, generation
            hosts = await self.lookups.run(
                key, lambda: self.load(key), not_before=now if fresh else None
            )
            # A change heard while the query ran may have come too late for it.
            if generation == self.generation:
                return hosts, generation

    async def load(self, key: str) -> frozenset[str]:
        """Read the user's hosts from the database and remember them."""
        started, generation = time.monotonic(), self.generation
        hosts = await read_visible_hosts(key)
        if generation == self.generation:
            self.hosts.put(key, hosts, started)
        return hosts

    def forget(self, user_ids: Iterable[str] | None) -> None:
        """Drop the users named (None: everyone); what any lookup in flight read
        is stale."""
        if user_ids is None:
            self.hosts.clear()
            self.lookups.clear()
        else:
            for user_id in user_ids:
                self.hosts.pop(user_id)
                self.lookups.forget(user_id)
        self.generation += 1

    def set_heard(self, heard: bool) -> None:
        """Grant changes now reach this process, or no longer do: either way,
        what it read before is not trusted."""
        self.heard = heard
        self.forget(None)


_access = LoopLocal(HostAccess)


def get_access() -> HostAccess:
    """This event loop's (this web process's) memory of who sees which hosts."""
    return _access.get()


async def cached_visible_hosts(user_id: object) -> frozenset[str]:
    """The names of the enabled hosts the user with this id may see, through this
    process's HostAccess (for sockets: cheap to call per frame)."""
    hosts, _ = await get_access().get(user_id)
    return hosts


@dataclass(frozen=True)
class HostChoice:
    """The host a socket's user gets (None: none they may see), and the
    HostAccess generation that was true in."""

    host: str | None
    user_id: str
    generation: int

    async def still_visible(self) -> bool:
        """Whether the user may still see the host, now that the socket hears grant
        changes: read again only if the process forgot users since the choice."""
        access = get_access()
        if self.generation == access.generation:
            return True
        hosts, _ = await access.get(self.user_id)
        return self.host in hosts


async def choose_visible_host(user_id: str, requested: str | None) -> HostChoice:
    """The host a viewer asking for `requested` (None: no choice) watches
    (metrics.directory.Hosts.choose): a host not theirs to see is refused as an
    unknown one is. Before refusing, the user's hosts are read again, so that a
    grant made a moment ago is never missed."""
    access, directory = get_access(), get_directory()
    visible, generation = await access.get(user_id)
    host = await directory.resolve(requested, visible)
    if host is None:
        visible, generation = await access.get(user_id, fresh=True)
        host = await directory.resolve(requested, visible)
    return HostChoice(host, user_id, generation)
