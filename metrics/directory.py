"""Which hosts viewers may choose, and which one they get when they name none,
read from the database at most once a REFRESH_SECONDS per process.

A storm of connects must not cost a query each; a host added a moment ago must
still be found, so a name that is not known forces a fresh read (one for all the
callers that overlap it).
"""

import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from core.loop_local import LoopLocal
from core.singleflight import SingleFlight
from metrics.models import Host

# A disabled or removed host stops being served to new viewers within this long.
REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class Hosts:
    """The enabled hosts, and those of them the local publisher registered."""

    enabled: frozenset[str]
    local: tuple[str, ...]

    def default(self) -> str | None:
        """The host of a viewer that names none: METRICS_DEFAULT_HOST, else the
        local publisher's host, else the only host; None if none can be chosen."""
        if settings.METRICS_DEFAULT_HOST:
            wanted = settings.METRICS_DEFAULT_HOST
            return wanted if wanted in self.enabled else None
        if settings.METRICS_HOST_NAME in self.local:
            return settings.METRICS_HOST_NAME
        if self.local:
            return self.local[0]
        if len(self.enabled) == 1:
            return next(iter(self.enabled))
        return None

    def choose(self, requested: str | None, visible: frozenset[str]) -> str | None:
        """The host of a viewer who may see `visible` (metrics.access) and asks for
        `requested` (None: no choice): a host named, if enabled and theirs to see
        (else None, alike); with none named, the default host if theirs to see,
        else the only enabled host they may see, else None."""
        mine = self.enabled & visible
        if requested is not None:
            return requested if requested in mine else None
        default = self.default()
        if default in mine:
            return default
        return next(iter(mine)) if len(mine) == 1 else None


def read_hosts() -> Hosts:
    """The enabled hosts, from the database."""
    rows = list(
        Host.objects.filter(enabled=True).order_by("name").values_list("name", "local")
    )
    return Hosts(
        enabled=frozenset(name for name, _ in rows),
        local=tuple(name for name, local in rows if local),
    )


class HostDirectory:
    """This process's view of the enabled hosts."""

    def __init__(self) -> None:
        self.hosts: Hosts | None = None
        self.read_at = 0.0
        self.reads: SingleFlight[Hosts] = SingleFlight()

    async def current(self, fresh: bool = False) -> Hosts:
        """The hosts, read again if older than REFRESH_SECONDS (or `fresh`)."""
        now = time.monotonic()
        if self.hosts is None or fresh or now - self.read_at > REFRESH_SECONDS:
            self.hosts = await self.reads.run("hosts", self._read, not_before=now)
            self.read_at = now
        return self.hosts

    async def _read(self) -> Hosts:
        return await database_sync_to_async(read_hosts, thread_sensitive=False)()

    async def resolve(
        self, requested: str | None, visible: frozenset[str]
    ) -> str | None:
        """The host a viewer who may see `visible` and asks for `requested` (None:
        no choice) watches (Hosts.choose), or None."""
        found = (await self.current()).choose(requested, visible)
        if found is None:
            found = (await self.current(fresh=True)).choose(requested, visible)
        return found


_directories = LoopLocal(HostDirectory)


def get_directory() -> HostDirectory:
    """This event loop's (this process's) directory of hosts."""
    return _directories.get()
