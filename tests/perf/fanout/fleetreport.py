"""--fleet mode's figures: in total and per grant set, and against the single host.

A frame is one interval's fleet frame, known by its timestamp. Each viewer must
get every frame of the window once (one per interval), in order, each listing
exactly its grant set's hosts. Latencies are from the frame's timestamp (when it
was built) to the moment its bytes reached the viewer's client process; "last"
is per frame the last of all the viewers, every grant set's, as for the single
host's snapshot.
"""

from itertools import pairwise
from typing import Any

from tests.perf.fanout.broadcasts import Broadcast
from tests.perf.fanout.hostreport import analyse_host, latency_figures, per
from tests.perf.fanout.report import pick, ratio, spent

# Issue 14's bars, against the single host's snapshot in the same run.
MAX_P95_RATIO = 1.5
MAX_CPU_RATIO = 2.0


def summarise_sockets(window: list[Broadcast], sockets: list[tuple]) -> dict:
    """analyse_host()'s figures for some of the fleet viewers, its "foreign"
    (another host's snapshot) being here a frame with the wrong hosts."""
    figures = analyse_host(window, sockets)
    return {
        "viewers": figures["viewers"],
        "latency_ms": latency_figures(
            figures["firsts"], figures["lasts"], figures["all"]
        ),
        "deliveries": figures["deliveries"],
        "expected_deliveries": figures["expected_deliveries"],
        "lost": figures["lost"],
        "duplicated": figures["duplicated"],
        "wrong_hosts": figures["foreign"],
        "out_of_order": figures["out_of_order"],
        "disconnected": {
            "total": sum(figures["disconnected"].values()),
            "by_code": figures["disconnected"],
        },
    }


def count_gaps(frames: list[Broadcast], interval: float) -> dict[str, Any]:
    """Between consecutive frames: the shortest and longest gap, and the intervals
    that had no frame any viewer received (a gap of k intervals misses k - 1)."""
    gaps = [b.published_at - a.published_at for a, b in pairwise(frames)]
    return {
        "min_s": round(min(gaps), 3) if gaps else None,
        "max_s": round(max(gaps), 3) if gaps else None,
        "intervals_without_frame": sum(
            max(round(gap / interval) - 1, 0) for gap in gaps
        ),
    }


def analyse_fleet(
    warm: Broadcast,
    window: list[Broadcast],
    collected: list[dict[str, Any]],
    sets: dict[str, list[str]],
    interval: float,
) -> dict[str, Any]:
    """The window's frames over every viewer, in total and per grant set."""
    sockets = [socket for share in collected for socket in share["sockets"]]
    frame_bytes: dict[str, int] = {}
    for share in collected:
        frame_bytes.update(share["frame_bytes"])
    per_set = {
        label: {
            "hosts": len(names),
            "frame_bytes": frame_bytes.get(label),
            **summarise_sockets(
                window, [socket for socket in sockets if socket[0] == label]
            ),
        }
        for label, names in sets.items()
    }
    return {
        **summarise_sockets(window, sockets),
        "latency_reference": "the frame's timestamp (when it was built)",
        "frames": len(window),
        "frame_gaps": count_gaps([warm, *window], interval),
        "per_set": per_set,
    }


def net_of_baseline(
    before: dict[str, Any],
    after: dict[str, Any],
    baseline: tuple[dict[str, Any], dict[str, Any]],
    deliveries: int,
) -> dict[str, Any]:
    """The web workers' CPU per fleet delivery beyond what does not grow with
    viewers: the baseline's CPU and deliveries (one viewer per grant set and
    client process), scaled to the window's length, taken off the window's."""
    wall = after["at"] - before["at"]
    web = spent(before["web"], after["web"])
    base = spent(baseline[0]["web"], baseline[1]["web"])
    base_wall = baseline[1]["at"] - baseline[0]["at"]
    if web is None or base is None or base_wall <= 0:
        return {"server_ms_per_delivery_net": None}
    scale = wall / base_wall
    extra = deliveries - baseline[1]["deliveries"] * scale
    return {"server_ms_per_delivery_net": per(web - base * scale, extra, 1000, 4)}


def judge_fleet(single: dict[str, Any] | None, fleet: dict[str, Any] | None) -> dict:
    """The fleet run against issue 14's bars and the single-host run of the same
    invocation (same viewer count, workers and interval)."""

    single_p95 = pick(single, "latency_ms", "last", "p95")
    fleet_p95 = pick(fleet, "latency_ms", "last", "p95")
    single_cpu = pick(single, "cpu", "server_ms_per_delivery")
    fleet_cpu = pick(fleet, "cpu", "server_ms_per_delivery")
    fleet_net = pick(fleet, "cpu", "server_ms_per_delivery_net")
    counts = {
        name: pick(fleet, name, "total")
        for name in ("lost", "duplicated", "wrong_hosts", "out_of_order")
    }
    missed = pick(fleet, "frame_gaps", "intervals_without_frame")
    p95_ratio = ratio(fleet_p95, single_p95)
    cpu_ratio = ratio(fleet_net, single_cpu)
    return {
        **counts,
        "intervals_without_frame": missed,
        "single_last_p95_ms": single_p95,
        "fleet_last_p95_ms": fleet_p95,
        "last_p95_ratio": p95_ratio,
        "single_ms_per_delivery": single_cpu,
        "fleet_ms_per_delivery": fleet_cpu,
        "fleet_ms_per_delivery_net": fleet_net,
        # The fleet's web CPU includes ingesting the agents' snapshots, which the
        # single host's publisher does outside the web workers: the bar is judged
        # on the figure without it, the all-in ratio is given beside it.
        "cpu_ratio": cpu_ratio,
        "cpu_ratio_all_in": ratio(fleet_cpu, single_cpu),
        "met": {
            "no_loss": counts["lost"] == 0
            and counts["duplicated"] == 0
            and missed == 0,
            "exact_hosts_in_order": counts["wrong_hosts"] == 0
            and counts["out_of_order"] == 0,
            "p95_within_1_5x": p95_ratio is not None and p95_ratio <= MAX_P95_RATIO,
            "cpu_within_2x": cpu_ratio is not None and cpu_ratio <= MAX_CPU_RATIO,
        },
    }
