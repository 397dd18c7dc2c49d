"""The fleet frame: one entry per host, from its latest snapshot and its state,
filtered to the hosts a viewer may see.

Pure functions: the builder (metrics.fleetbuilder) serialises each host's entry
once per interval, and every web process joins the entries of each distinct set
of visible hosts into one frame (metrics.fleetfanout)."""

import json
from datetime import UTC, datetime
from typing import Any

from agent.snapshots import format_timestamp
from metrics.events import serialise
from metrics.hoststate import HostState
from metrics.store import Latest

# The fleet frame's type, to viewers, and the event carrying it, to web processes.
FLEET_FRAME_TYPE = "fleet"
FLEET_EVENT_TYPE = "metrics.fleet"
# The group of the web processes that have fleet viewers.
FLEET_GROUP = "metrics.fleet"

FIGURES = (
    "cpu_percent",
    "memory_percent",
    "load_1",
    "net_sent_per_sec",
    "net_recv_per_sec",
    "disk_max_percent",
)


def iso(seconds: float | None) -> str | None:
    """Wall time in seconds as ISO-8601 UTC ("...Z"), None as None."""
    if seconds is None:
        return None
    return format_timestamp(datetime.fromtimestamp(seconds, tz=UTC))


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.get(name)
    return section if isinstance(section, dict) else {}


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def figures_of(snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """The fleet figures of a snapshot message (all None without one); a figure
    that is missing or not a number is None."""
    data = snapshot.get("data") if isinstance(snapshot, dict) else None
    if not isinstance(data, dict):
        return dict.fromkeys(FIGURES)
    cpu = _section(data, "cpu")
    network = _section(data, "network")
    load = cpu.get("load_avg")
    # Partitions by mount point (docs/protocol.md).
    partitions = _section(_section(data, "disk"), "partitions")
    disks = [
        _number(partition.get("usage_percent"))
        for partition in partitions.values()
        if isinstance(partition, dict)
    ]
    disks = [percent for percent in disks if percent is not None]
    return {
        "cpu_percent": _number(cpu.get("usage_percent")),
        "memory_percent": _number(_section(data, "memory").get("usage_percent")),
        "load_1": _number(load[0]) if isinstance(load, list) and load else None,
        "net_sent_per_sec": _number(network.get("bytes_sent_per_sec")),
        "net_recv_per_sec": _number(network.get("bytes_recv_per_sec")),
        "disk_max_percent": max(disks, default=None),
    }


def build_entry(
    host: str, snapshot: dict[str, Any] | None, state: HostState
) -> dict[str, Any]:
    """One host's entry: its name, whether it is online, when it was last seen, and
    the figures of its latest snapshot (None without one)."""
    return {
        "host": host,
        "online": state.online,
        "last_seen": iso(state.last_seen),
        **figures_of(snapshot),
    }


def parse_snapshot(latest: Latest) -> dict[str, Any] | None:
    """The snapshot message of a host's latest event (None: none, or garbled)."""
    if latest.event is None:
        return None
    try:
        snapshot = json.loads(latest.event["text"])
    except ValueError:
        return None
    return snapshot if isinstance(snapshot, dict) else None


def serialise_entries(latests: dict[str, Latest]) -> dict[str, str]:
    """Each host's entry as JSON text, by host name in name order."""
    return {
        host: serialise(build_entry(host, parse_snapshot(latest), latest.state))
        for host, latest in sorted(latests.items())
    }


def make_fleet_event(
    entries: dict[str, str], built_at: float, interval: float
) -> dict[str, Any]:
    """The channel-layer event carrying every host's entry (JSON text, by name in
    name order), built at wall time `built_at`."""
    return {
        "type": FLEET_EVENT_TYPE,
        "ts": built_at,
        "interval": interval,
        "entries": entries,
    }


def fleet_frame(event: dict[str, Any], visible: frozenset[str]) -> str:
    """The fleet frame of an event for a viewer who may see `visible`: the entries
    of those hosts, in name order, joined without parsing them again."""
    hosts = ",".join(text for host, text in event["entries"].items() if host in visible)
    head = serialise(
        {
            "type": FLEET_FRAME_TYPE,
            "timestamp": iso(event["ts"]),
            "interval": event["interval"],
        }
    )
    return f'{head[:-1]},"hosts":[{hosts}]}}'


def is_fleet_event(event: dict[str, Any]) -> bool:
    """Whether a channel-layer message is a fleet event this code can frame."""
    entries = event.get("entries")
    ts = event.get("ts")
    return (
        isinstance(ts, int | float)
        and not isinstance(ts, bool)
        and isinstance(event.get("interval"), int | float)
        and isinstance(entries, dict)
        and all(
            isinstance(host, str) and isinstance(text, str)
            for host, text in entries.items()
        )
    )
