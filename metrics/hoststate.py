"""Each host's state as Redis holds it (P:host:<name>:state): online, last seen, its
interval, clock skew. A minimal version: the server's core may replace the
internals, keeping load_host_states()."""

import math
import time
from dataclasses import dataclass

from core.keys import redis_key
from core.redis import get_sync_redis

# A host is offline after this many of its intervals without a snapshot (plus 1 s).
OFFLINE_INTERVALS = 3
OFFLINE_GRACE = 1.0


@dataclass(frozen=True)
class HostState:
    """What is known of a host's stream."""

    online: bool
    last_seen: float | None
    interval: float | None
    clock_skew: bool


def load_host_states(
    names: list[str], now: float | None = None
) -> dict[str, HostState]:
    """Return each named host's state; redis.RedisError when Redis cannot answer."""
    if not names:
        return {}
    pipeline = get_sync_redis().pipeline(transaction=False)
    for name in names:
        pipeline.hgetall(redis_key("host", name, "state"))
    hashes = pipeline.execute()
    if now is None:
        now = time.time()
    return {
        name: read_host_state(decoded(fields), now)
        for name, fields in zip(names, hashes, strict=True)
    }


def read_host_state(fields: dict[str, str], now: float) -> HostState:
    """A state hash's fields read into a HostState at time now."""
    last_seen = read_number(fields.get("last_seen"))
    interval = read_number(fields.get("interval"))
    recent = (
        last_seen is not None
        and interval is not None
        and now - last_seen <= OFFLINE_INTERVALS * interval + OFFLINE_GRACE
    )
    return HostState(
        online=bool(fields.get("agent")) or recent,
        last_seen=last_seen,
        interval=interval,
        clock_skew=fields.get("clock_skew", "") not in ("", "0", "false"),
    )


def decoded(fields: dict) -> dict[str, str]:
    return {
        (key.decode() if isinstance(key, bytes) else key): (
            value.decode() if isinstance(value, bytes) else value
        )
        for key, value in fields.items()
    }


def read_number(value: str | None) -> float | None:
    """A finite number read from a field, or None."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
