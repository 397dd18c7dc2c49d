"""--hosts mode's figures: per host and in total, and against the single host.

Latencies are from the agent's send (its wall time right before writing the frame)
to the moment the bytes reached the viewer's client process, in ms as p50, p95 and
max. A viewer must get every snapshot of its host's window once, in order, and none
of another host's.
"""

from collections import Counter
from typing import Any

from tests.perf.fanout.broadcasts import Broadcast
from tests.perf.fanout.report import percent_of_core, pick, ratio, spent, summarise

# Issue 13's bars.
MAX_P95_RATIO = 2.0
MAX_INGEST_MS = 0.5


def analyse_host(window: list[Broadcast], sockets: list[tuple]) -> dict[str, Any]:
    """One host's window: `sockets` are its viewers' (host, code, entries, foreign,
    disorder), entries per window snapshot (copies, first receive time)."""
    per_snapshot: list[list[float]] = [[] for _ in window]
    everything: list[float] = []
    lost = duplicated = deliveries = foreign = disorder = 0
    clients_lost = clients_duplicated = clients_foreign = clients_disorder = 0
    disconnected: Counter[str] = Counter()
    for _, code, entries, alien, unordered in sockets:
        if code is not None:
            disconnected[str(code)] += 1
        missing = extra = 0
        for index, (copies, first) in enumerate(entries):
            missing += copies == 0
            extra += max(copies - 1, 0)
            deliveries += copies
            if copies:
                latency = first - window[index].published_at
                per_snapshot[index].append(latency)
                everything.append(latency)
        lost += missing
        duplicated += extra
        foreign += alien
        disorder += unordered
        clients_lost += bool(missing)
        clients_duplicated += bool(extra)
        clients_foreign += bool(alien)
        clients_disorder += bool(unordered)
    return {
        "viewers": len(sockets),
        "snapshots": len(window),
        "firsts": [min(values) for values in per_snapshot if values],
        "lasts": [max(values) for values in per_snapshot if values],
        "all": everything,
        "deliveries": deliveries,
        "expected_deliveries": len(sockets) * len(window),
        "lost": {"total": lost, "clients": clients_lost},
        "duplicated": {"total": duplicated, "clients": clients_duplicated},
        "foreign": {"total": foreign, "clients": clients_foreign},
        "out_of_order": {"total": disorder, "clients": clients_disorder},
        "disconnected": dict(sorted(disconnected.items())),
    }


def latency_figures(firsts: list, lasts: list, everything: list) -> dict[str, Any]:
    """publish -> first and -> last viewer per snapshot, and over all deliveries."""
    return {
        "first": summarise(firsts),
        "last": summarise(lasts),
        "all": {k: v for k, v in summarise(everything).items() if k != "max"},
    }


def add_up(counts: list[dict[str, int]]) -> dict[str, int]:
    """Sum {"total", "clients"} figures over hosts."""
    return {
        "total": sum(count["total"] for count in counts),
        "clients": sum(count["clients"] for count in counts),
    }


def analyse_hosts(
    windows: dict[str, list[Broadcast]], collected: list[list[tuple]]
) -> dict[str, Any]:
    """Every host's window and the totals over them."""
    by_host: dict[str, list[tuple]] = {name: [] for name in windows}
    for share in collected:
        for socket in share:
            by_host[socket[0]].append(socket)
    hosts = {name: analyse_host(windows[name], by_host[name]) for name in windows}
    per_host = {
        name: {
            "viewers": figures["viewers"],
            "snapshots": figures["snapshots"],
            "latency_ms": latency_figures(
                figures["firsts"], figures["lasts"], figures["all"]
            ),
            **{
                key: figures[key]
                for key in (
                    "deliveries",
                    "expected_deliveries",
                    "lost",
                    "duplicated",
                    "foreign",
                    "out_of_order",
                    "disconnected",
                )
            },
        }
        for name, figures in hosts.items()
    }
    values = list(hosts.values())
    disconnected: Counter[str] = Counter()
    for figures in values:
        disconnected.update(figures["disconnected"])
    host_p95s = [
        figures["latency_ms"]["last"]["p95"]
        for figures in per_host.values()
        if figures["latency_ms"]["last"]["p95"] is not None
    ]
    return {
        "latency_ms": latency_figures(
            [v for figures in values for v in figures["firsts"]],
            [v for figures in values for v in figures["lasts"]],
            [v for figures in values for v in figures["all"]],
        ),
        "latency_reference": "the agent's wall time right before it sent the frame",
        "last_p95_worst_host_ms": max(host_p95s, default=None),
        "snapshots": sum(figures["snapshots"] for figures in values),
        "deliveries": sum(figures["deliveries"] for figures in values),
        "expected_deliveries": sum(f["expected_deliveries"] for f in values),
        "lost": add_up([figures["lost"] for figures in values]),
        "duplicated": add_up([figures["duplicated"] for figures in values]),
        "foreign": add_up([figures["foreign"] for figures in values]),
        "out_of_order": add_up([figures["out_of_order"] for figures in values]),
        "disconnected": {
            "total": sum(disconnected.values()),
            "by_code": dict(sorted(disconnected.items())),
        },
        "per_host": per_host,
    }


def per(value: float | None, count: float | None, scale: float, digits: int):
    """value x scale / count, rounded; None if either is missing or count is 0."""
    if value is None or not count:
        return None
    return round(value * scale / count, digits)


def summarise_phase(
    before: dict[str, Any], after: dict[str, Any], deliveries: float | None
) -> dict[str, Any]:
    """CPU and Redis over a stretch of time: web CPU per snapshot the agents sent
    (ingested) and per delivery, Redis commands per snapshot.

    `before` and `after` hold "at", "web", "publisher", "redis_cpu",
    "redis_commands", "agents_cpu", "clients" (CPU seconds per client process),
    "sent" (per host).
    """
    wall = after["at"] - before["at"]
    snapshots = sum(after["sent"].values()) - sum(before["sent"].values())
    web = spent(before["web"], after["web"])
    commands = spent(before["redis_commands"], after["redis_commands"])
    clients = [
        percent_of_core(spent(b, a), wall)
        for b, a in zip(before["clients"], after["clients"], strict=True)
    ]
    return {
        "window_seconds": round(wall, 3),
        "snapshots_ingested": snapshots,
        "deliveries": round(deliveries) if deliveries is not None else None,
        "server_percent": percent_of_core(web, wall),
        "server_ms_per_snapshot": (per(web, snapshots, 1000, 4)),
        "server_ms_per_delivery": (per(web, deliveries, 1000, 4)),
        "publisher_percent": percent_of_core(
            spent(before["publisher"], after["publisher"]), wall
        ),
        "redis_commands": commands,
        "redis_commands_per_snapshot": (per(commands, snapshots, 1, 2)),
        "redis_percent": percent_of_core(
            spent(before["redis_cpu"], after["redis_cpu"]), wall
        ),
        "agents_percent": percent_of_core(
            spent(before["agents_cpu"], after["agents_cpu"]), wall
        ),
        "client_percent_per_process": clients,
        "client_saturated": any(v is not None and v >= 90.0 for v in clients),
    }


def judge(single: dict[str, Any] | None, hosts: dict[str, Any] | None) -> dict:
    """The hosts run against issue 13's bars and the single-host run of the same
    invocation (same viewers, workers and interval)."""

    single_p95 = pick(single, "latency_ms", "last", "p95")
    hosts_p95 = pick(hosts, "latency_ms", "last", "p95")
    worst_p95 = pick(hosts, "last_p95_worst_host_ms")
    ingest = pick(hosts, "fewer_viewers", "one_per_host", "server_ms_per_snapshot")
    every = pick(hosts, "cpu", "redis_commands_per_snapshot")
    half = pick(hosts, "fewer_viewers", "half", "redis_commands_per_snapshot")
    one = pick(hosts, "fewer_viewers", "one_per_host", "redis_commands_per_snapshot")
    lost = pick(hosts, "lost", "total")
    duplicated = pick(hosts, "duplicated", "total")
    foreign = pick(hosts, "foreign", "total")
    disorder = pick(hosts, "out_of_order", "total")
    return {
        "lost": lost,
        "duplicated": duplicated,
        "foreign": foreign,
        "out_of_order": disorder,
        "single_last_p95_ms": single_p95,
        "hosts_last_p95_ms": hosts_p95,
        "last_p95_ratio": ratio(hosts_p95, single_p95),
        "worst_host_last_p95_ratio": ratio(worst_p95, single_p95),
        # The web workers' CPU per snapshot with one viewer per host: ingest plus
        # a single delivery. With every viewer, cpu.server_ms_per_snapshot adds the
        # fan-out to them.
        "ingest_ms_per_snapshot": ingest,
        "redis_commands_per_snapshot": {
            "every_viewer": every,
            "half": half,
            "one_per_host": one,
        },
        # Every viewer over half of them: 1.0 when Redis's work does not grow with
        # viewers (both hold viewers of every host on every worker).
        "redis_commands_ratio": ratio(every, half),
        "met": {
            "no_loss": lost == 0 and duplicated == 0,
            "own_host_only_in_order": foreign == 0 and disorder == 0,
            "p95_within_2x": (
                hosts_p95 is not None
                and single_p95 is not None
                and hosts_p95 <= MAX_P95_RATIO * single_p95
            ),
            "ingest_cpu": ingest is not None and ingest <= MAX_INGEST_MS,
        },
    }
