"""The report's figures, made of what the measurement sampled.

Latencies and handshake times are in milliseconds as p50, p95 and max; CPU as a
percentage of one core; ratios are the service's figure over the bare server's.
"""

import importlib.metadata
import os
import platform
from collections import Counter
from typing import Any

import psutil

from tests.perf.fanout.broadcasts import Broadcast, parse_timestamp
from tests.perf.fanout.resources import CpuSample, read_sysctl
from tests.support.stats import percentile

SATURATED_PERCENT = 90.0


def summarise(samples: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """Return p50, p95 and max of `samples` (seconds) in ms, or nulls if none."""
    if not samples:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(percentile(samples, 0.5) * scale, 2),
        "p95": round(percentile(samples, 0.95) * scale, 2),
        "max": round(max(samples) * scale, 2),
    }


def rounded(value: float | None, digits: int) -> float | None:
    """round(), passing None through."""
    return None if value is None else round(value, digits)


def spent(before: float | None, after: float | None) -> float | None:
    """Return after - before, or None if either is unknown."""
    return None if before is None or after is None else after - before


def percent_of_core(seconds: float | None, wall: float) -> float | None:
    """CPU seconds over a wall period as a percentage of one core."""
    return None if seconds is None or wall <= 0 else round(100 * seconds / wall, 1)


def summarise_connect(
    clients: int,
    storms: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    server_cpu: tuple[float | None, float | None],
    counters: tuple[dict[str, int], dict[str, int]],
) -> dict[str, Any]:
    """The connect storm: how many connected, how fast, how the others failed.

    `storms` and `answers` are the client processes' answers to "connect" and
    "settle"; `server_cpu` and `counters` the web processes' CPU seconds and the
    kernel's listen counters before and after the storm.
    """
    server_before, server_after = server_cpu
    counters_before, counters_after = counters
    failures: Counter[str] = Counter()
    handshakes: list[float] = []
    failed_after: list[float] = []
    for answer in answers:
        failures.update(answer["failures"])
        handshakes += answer["handshake_seconds"]
        failed_after += answer["failure_seconds"]
    connected = sum(answer["connected"] for answer in answers)
    started = min(storm["started"] for storm in storms)
    ends = [answer["last_handshake"] for answer in answers if answer["last_handshake"]]
    seconds = max(ends) - started if ends else None
    return {
        "attempted": clients,
        "connected": connected,
        "seconds": round(seconds, 3) if seconds is not None else None,
        "per_second": round(connected / seconds, 1) if seconds else None,
        "failures": dict(sorted(failures.items())),
        "handshake_ms": summarise(handshakes),
        "handshakes_over_1s": sum(1 for took in handshakes if took >= 1.0),
        # From a failed client's first attempt to its failure.
        "failure_ms": summarise(failed_after),
        # CPU while the clients connected (or failed to).
        "server_cpu_s": rounded(spent(server_before, server_after), 3),
        "client_cpu_s": [round(storm["cpu_s"], 3) for storm in storms],
        "client_percent_max": max(
            percent_of_core(storm["cpu_s"], storm["seconds"]) for storm in storms
        ),
        "kernel_listen_counters_delta": {
            name: counters_after[name] - counters_before.get(name, 0)
            for name in counters_after
        },
    }


def summarise_memory(
    before: int | None,
    after: int | None,
    connected: int,
    sockets_per_web_process: list[int | None],
) -> dict[str, Any]:
    """The web processes' RSS before and after the storm, and per connection."""
    return {
        "before_mb": rounded(before and before / 2**20, 1),
        "after_mb": rounded(after and after / 2**20, 1),
        "per_connection_kb": (
            round((after - before) / connected / 1024, 1)
            if before and after and connected
            else None
        ),
        "sockets_per_web_process": sockets_per_web_process,
    }


def reference_times(window: list[Broadcast]) -> tuple[dict[str, float], str]:
    """Per timestamp text, the publish time latencies are measured from.

    The message's own timestamp when it has milliseconds; for a whole-second one
    (up to a second early) the publish time the server reported or stored.
    """
    references: dict[str, float] = {}
    sources = set()
    for broadcast in window:
        stamped, precise = parse_timestamp(broadcast.key)
        if precise:
            references.setdefault(broadcast.key, stamped)
            sources.add("message timestamp (ms)")
        else:
            references.setdefault(broadcast.key, broadcast.published_at)
            sources.add("publish time reported by the server (timestamp in s)")
    return references, "; ".join(sorted(sources))


def analyse_window(
    window: list[Broadcast], collected: list[list[tuple[int | None, list]]]
) -> dict[str, Any]:
    """Latency, loss, duplication and disconnections over the window's broadcasts."""
    keys = list(dict.fromkeys(broadcast.key for broadcast in window))
    expected = Counter(broadcast.key for broadcast in window)
    references, source = reference_times(window)
    per_key: dict[str, list[float]] = {key: [] for key in keys}
    everything: list[float] = []
    lost = duplicated = deliveries = 0
    clients = clients_lost = clients_duplicated = 0
    disconnected: Counter[str] = Counter()
    for share in collected:
        for code, entries in share:
            clients += 1
            if code is not None:
                disconnected[str(code)] += 1
            missing = extra = 0
            for key, (copies, first) in zip(keys, entries, strict=True):
                missing += max(expected[key] - copies, 0)
                extra += max(copies - expected[key], 0)
                deliveries += copies
                if copies:
                    latency = first - references[key]
                    per_key[key].append(latency)
                    everything.append(latency)
            lost += missing
            duplicated += extra
            clients_lost += bool(missing)
            clients_duplicated += bool(extra)
    firsts = [min(values) for values in per_key.values() if values]
    lasts = [max(values) for values in per_key.values() if values]
    return {
        "latency_ms": {
            "first": summarise(firsts),
            "last": summarise(lasts),
            "all": {
                key: value
                for key, value in summarise(everything).items()
                if key != "max"
            },
        },
        "latency_reference": source,
        "deliveries": deliveries,
        "expected_deliveries": clients * len(window),
        "lost": {"total": lost, "clients": clients_lost},
        "duplicated": {"total": duplicated, "clients": clients_duplicated},
        "disconnected": {
            "total": sum(disconnected.values()),
            "by_code": dict(sorted(disconnected.items())),
        },
    }


def summarise_wire(received: int, deliveries: int) -> dict[str, Any]:
    """The bytes the clients read from TCP over the window, and per delivery (the
    frames as sent, and any ping between them; no TCP or IP headers)."""
    return {
        "bytes": received,
        "bytes_per_delivery": round(received / deliveries, 1) if deliveries else None,
    }


def summarise_server_delivery(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> dict[str, Any] | None:
    """The web workers' own figure over the window: the mean time from a
    snapshot's publication to the end of its write to a worker's last socket, with
    no client's work in it (None where the server does not report it)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    count = after[1] - before[1]
    return {
        "snapshots": int(count),
        "mean_ms": round((after[0] - before[0]) / count * 1000, 2),
    }


def summarise_cpu(
    before: CpuSample,
    after: CpuSample,
    deliveries: int,
    broadcasts: int,
    service: bool,
) -> dict[str, Any]:
    """CPU use of the server, publisher, Redis and clients over the window.

    The publisher's and Redis's are figures of the service only.
    """
    wall = after.at - before.at
    web_cpu = spent(before.web, after.web)
    clients = [spent(b, a) for b, a in zip(before.clients, after.clients, strict=True)]
    clients_percent = [percent_of_core(value, wall) for value in clients]
    known_percent = [value for value in clients_percent if value is not None]
    cpu: dict[str, Any] = {
        "window_seconds": round(wall, 3),
        "server_percent": percent_of_core(web_cpu, wall),
        "server_ms_per_delivery": (
            round(web_cpu * 1000 / deliveries, 4)
            if web_cpu is not None and deliveries
            else None
        ),
        "client_percent": round(sum(known_percent), 1),
        "client_percent_per_process": clients_percent,
        # A client process works through its sockets one after another: when this
        # comes near the "last" latency, that latency is the client's, not the
        # server's (give it more --client-processes, and CPUs).
        "client_ms_per_broadcast_max": max(
            (round(v * 1000 / broadcasts, 1) for v in clients if v is not None),
            default=None,
        ),
        "client_saturated": any(v >= SATURATED_PERCENT for v in known_percent),
    }
    if web_cpu is None:
        cpu["note"] = "a web process exited during the window"
    if service:
        cpu["publisher_percent"] = percent_of_core(
            spent(before.publisher, after.publisher), wall
        )
        cpu["redis_percent"] = percent_of_core(spent(before.redis, after.redis), wall)
    return cpu


def ratio(service: float | None, bare: float | None) -> float | None:
    """service / bare, or None if either is missing or bare is zero."""
    if service is None or not bare:
        return None
    return round(service / bare, 2)


FIGURES = {
    "last_p95": ("latency_ms", "last", "p95"),
    "last_p50": ("latency_ms", "last", "p50"),
    "first_p95": ("latency_ms", "first", "p95"),
    "connect_rate": ("connect", "per_second"),
    "cpu_per_delivery": ("cpu", "server_ms_per_delivery"),
    "rss_per_connection": ("rss", "per_connection_kb"),
}
# Compressing against plain clients: these too, and the bytes.
COMPRESSION_FIGURES = {
    **FIGURES,
    "wire_bytes_per_delivery": ("wire", "bytes_per_delivery"),
    "server_delivery_mean": ("server_delivery", "mean_ms"),
}
# The bound on compressing clients: p95 publish -> last client and CPU per
# delivery at most this many times the plain clients'.
COMPRESSION_LIMIT = 1.25


def pick(report: dict[str, Any] | None, *path: str) -> Any:
    """The figure at `path` in a target's report, or None."""
    for step in path:
        if not isinstance(report, dict):
            return None
        report = report.get(step)
    return report


def compare(
    bare: dict[str, Any] | None,
    service: dict[str, Any] | None,
    figures: dict[str, tuple[str, ...]] = FIGURES,
) -> dict:
    """The service's figures as multiples of the bare server's (or of any other
    target's, with the figures given)."""
    return {
        name: ratio(pick(service, *path), pick(bare, *path))
        for name, path in figures.items()
    }


def weigh_compression(
    plain: dict[str, Any] | None, deflate: dict[str, Any] | None
) -> dict[str, Any]:
    """The compressing clients' figures as multiples of the plain clients', and
    whether they are within the issue's bound."""
    ratios = compare(plain, deflate, COMPRESSION_FIGURES)

    def within(name: str) -> bool | None:
        value = ratios[name]
        return None if value is None else value <= COMPRESSION_LIMIT

    return {
        **ratios,
        "limit": COMPRESSION_LIMIT,
        "met": {name: within(name) for name in ("last_p95", "cpu_per_delivery")},
    }


def describe_machine(file_limit: int) -> dict[str, Any]:
    """Return what the numbers depend on: host, Python, kernel limits."""
    return {
        "cpus": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "websockets": importlib.metadata.version("websockets"),
        "open_files_limit": file_limit,
        "somaxconn": read_sysctl("net.core.somaxconn"),
        "tcp_max_syn_backlog": read_sysctl("net.ipv4.tcp_max_syn_backlog"),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }
