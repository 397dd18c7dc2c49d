"""The host the tests' viewers watch when they name none (METRICS_HOST_NAME, as
tests/settings.py sets it), its group, and its snapshot events."""

from typing import Any

from django.conf import settings

from core.keys import redis_key
from metrics.events import host_group, make_event
from metrics.hoststate import HostLease

HOST = settings.METRICS_HOST_NAME
GROUP = host_group(HOST)
INTERVAL = 5.0
# The answer to a ping on a socket of the default host.
PONG = {"type": "pong", "host": HOST}


def host_event(
    snapshot: dict[str, Any], published_at: float, host: str = HOST
) -> dict[str, Any]:
    """A snapshot event of `host` (by default the tests' default host)."""
    return make_event(snapshot, published_at, host, INTERVAL)


def host_key(*parts: str, host: str = HOST) -> str:
    """A Redis key of the default host's: latest, history, state, leader."""
    return redis_key("host", host, *parts)


async def hold_host(host: str = HOST) -> HostLease:
    """Hold a host as its sender would (online, live, on INTERVAL) for ten minutes:
    viewers get its snapshots without being told it is offline."""
    lease = HostLease(host, "tests", seconds=600)
    await lease.claim(INTERVAL, 0, live=True)
    return lease
