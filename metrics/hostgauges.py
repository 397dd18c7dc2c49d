"""The hosts' figures as Prometheus gauges, read from Redis at scrape time.

Each enabled host's latest snapshot and state are read in one round trip
(metrics.store.load_latest_of), so every web worker answers a scrape with the same
figures. A figure the snapshot holds as null (not measured) gives no sample; a host
whose latest snapshot has expired gives only `host_online` and, if known,
`host_last_seen_timestamp_seconds`. docs/metrics.md lists the families.
"""

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from metrics.store import Latest, load_latest_of

# (name, help, section of data, field): one gauge per host each.
SCALARS = (
    (
        "host_cpu_usage_percent",
        "CPU busy, percent of all CPUs.",
        "cpu",
        "usage_percent",
    ),
    (
        "host_memory_usage_percent",
        "Memory in use, percent of the total.",
        "memory",
        "usage_percent",
    ),
    ("host_memory_used_bytes", "Memory in use, bytes.", "memory", "used_bytes"),
    ("host_memory_total_bytes", "Memory in all, bytes.", "memory", "total_bytes"),
    (
        "host_memory_available_bytes",
        "Memory available without swapping, bytes.",
        "memory",
        "available_bytes",
    ),
    ("host_swap_usage_percent", "Swap in use, percent.", "memory", "swap_percent"),
    (
        "host_network_sent_bytes_per_second",
        "Bytes sent per second over the counted interfaces.",
        "network",
        "bytes_sent_per_sec",
    ),
    (
        "host_network_received_bytes_per_second",
        "Bytes received per second over the counted interfaces.",
        "network",
        "bytes_recv_per_sec",
    ),
)
# Load averages over 1, 5 and 15 minutes: cpu.load_avg's three entries.
LOADS = (
    ("host_load1", "Load average over 1 minute."),
    ("host_load5", "Load average over 5 minutes."),
    ("host_load15", "Load average over 15 minutes."),
)
# (name, help, field of disk.io).
DISK_IO = (
    (
        "host_disk_read_bytes_per_second",
        "Bytes read per second from the whole disks.",
        "read_bytes_per_sec",
    ),
    (
        "host_disk_written_bytes_per_second",
        "Bytes written per second to the whole disks.",
        "write_bytes_per_sec",
    ),
)
# (name, help, field of a disk.partitions entry); labelled {host, mount}.
PARTITIONS = (
    (
        "host_filesystem_usage_percent",
        "Filesystem space in use, percent.",
        "usage_percent",
    ),
    ("host_filesystem_used_bytes", "Filesystem space in use, bytes.", "used_bytes"),
    ("host_filesystem_size_bytes", "Filesystem size, bytes.", "total_bytes"),
)


def number(value: object) -> float | None:
    """A figure as a sample value; None (no sample) for null or anything odd."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def snapshot_data(event: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of a stored latest event (its text is the snapshot's JSON)."""
    if event is None:
        return {}
    try:
        message = json.loads(event["text"])
    except ValueError:
        return {}
    data = message.get("data") if isinstance(message, dict) else None
    return data if isinstance(data, dict) else {}


def host_families(hosts: dict[str, Latest]) -> list[Metric]:
    """The gauge families of the hosts' figures."""
    families: dict[str, GaugeMetricFamily] = {}

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ("host",)):
        if name not in families:
            families[name] = GaugeMetricFamily(name, documentation, labels=labels)
        return families[name]

    def add(name: str, documentation: str, labels: list[str], value: object) -> None:
        family = gauge(name, documentation, ("host", "mount")[: len(labels)])
        sample = number(value)
        if sample is not None:
            family.add_metric(labels, sample)

    for host, (event, state) in sorted(hosts.items()):
        data = snapshot_data(event)
        online = 1.0 if state.online else 0.0
        add("host_online", "1 if the host is online, else 0.", [host], online)
        add(
            "host_last_seen_timestamp_seconds",
            "When the server last received a live snapshot of the host, Unix time.",
            [host],
            state.last_seen,
        )
        for name, documentation, part, field in SCALARS:
            add(name, documentation, [host], section(data, part).get(field))
        loads = section(data, "cpu").get("load_avg")
        loads = loads if isinstance(loads, list) and len(loads) == 3 else [None] * 3
        for (name, documentation), value in zip(LOADS, loads, strict=True):
            add(name, documentation, [host], value)
        io = section(section(data, "disk"), "io")
        for name, documentation, field in DISK_IO:
            add(name, documentation, [host], io.get(field))
        partitions = section(section(data, "disk"), "partitions")
        for mount, figures in sorted(partitions.items()):
            for name, documentation, field in PARTITIONS:
                value = figures.get(field) if isinstance(figures, dict) else None
                add(name, documentation, [host, mount], value)
    return list(families.values())


class HostCollector:
    """A collector of the hosts' gauges, read once (per scrape) when made."""

    def __init__(self, names: list[str]) -> None:
        self.families = host_families(load_latest_of(names)) if names else []

    def collect(self) -> Iterator[Metric]:
        """The families read (prometheus_client calls this to expose them)."""
        yield from self.families
