"""The procedure against one started target, and what it samples on the way.

Warm-up sockets, then the memory baseline, then the connect storm, then a warm-up
broadcast that every client received, then the window of --broadcasts broadcasts,
with the CPU time of every process sampled at its two ends.
"""

import argparse
import asyncio
import logging
import time
from typing import Any

from websockets.asyncio.client import connect

from tests.perf.fanout import FanoutError, finish
from tests.perf.fanout.clients import SETTLE, ClientPool
from tests.perf.fanout.fleettarget import FleetTarget
from tests.perf.fanout.fleetwindow import measure_fleet_window
from tests.perf.fanout.hosttarget import HostsTarget
from tests.perf.fanout.hostwindow import measure_hosts_window
from tests.perf.fanout.report import (
    analyse_window,
    summarise_connect,
    summarise_cpu,
    summarise_memory,
    summarise_server_delivery,
    summarise_wire,
)
from tests.perf.fanout.resources import (
    CpuSample,
    count_sockets,
    cpu_seconds,
    read_tcp_counters,
    rss_bytes,
)
from tests.perf.fanout.targets import ServiceTarget, Target

logger = logging.getLogger(__name__)

# Sockets per web process opened and closed before the memory baseline.
WARM_UP_SOCKETS = 8
POLL = 0.1
STEP_TIMEOUT = 30.0


async def measure(
    target: Target, args: argparse.Namespace, grace: float
) -> dict[str, Any]:
    """Run the whole procedure against one target, which must be started."""
    name = target.name
    await warm_up(target)
    rss_before = rss_bytes(target.web)
    pool = ClientPool(args.client_processes)
    try:
        await pool.ping()
        logger.info("%s: connecting %d clients at once", name, args.clients)
        connects, last_handshake = await connect_storm(target, pool, args.clients, args)
        rss_after = rss_bytes(target.web)
        connected = connects["connected"]
        logger.info(
            "%s: %d connected in %s s, failures %s",
            name,
            connected,
            connects["seconds"],
            connects["failures"] or "none",
        )
        report = {
            **target.describe(),
            "connect": connects,
            "rss": summarise_memory(
                rss_before,
                rss_after,
                connected,
                [count_sockets(process, target.port) for process in target.web],
            ),
        }
        if not connected:
            failures = ", ".join(f"{n} {k}" for k, n in connects["failures"].items())
            report["error"] = f"{name}: no client connected ({failures})"
            return report
        if isinstance(target, FleetTarget):
            report.update(
                await measure_fleet_window(target, pool, args, grace, last_handshake)
            )
        elif isinstance(target, HostsTarget):
            report.update(
                await measure_hosts_window(target, pool, args, grace, last_handshake)
            )
        else:
            report.update(
                await measure_window(target, pool, args, grace, last_handshake)
            )
        return report
    finally:
        logger.info("%s: closing the clients", name)
        await finish(pool.close())


async def warm_up(target: Target) -> None:
    """Open and close a few sockets on each web process before measuring memory.

    A server's first connections set up things once (imports, thread pools,
    connections to Redis); charging those to every socket would overstate the
    memory a socket costs, most with few sockets per process.
    """
    urls = target.client_urls(WARM_UP_SOCKETS * len(target.web))
    sockets = await asyncio.gather(
        *(
            connect(
                url,
                origin=target.origin,
                open_timeout=STEP_TIMEOUT,
                compression=target.compression,
            )
            for url in urls
        )
    )
    await asyncio.sleep(SETTLE)
    await asyncio.gather(*(ws.close() for ws in sockets))


async def connect_storm(
    target: Target, pool: ClientPool, clients: int, args: argparse.Namespace
) -> tuple[dict[str, Any], float | None]:
    """Open every client at once over the client processes; return how it went and
    when the last handshake ended (None if no client connected)."""
    urls = target.client_urls(clients)
    hosts = target.client_hosts(clients)
    processes = len(pool.links)
    payloads = [
        {
            "urls": urls[index::processes],
            "origin": target.origin,
            "open_timeout": args.connect_timeout,
            "hosts": hosts[index::processes] if hosts else None,
            "sets": target.grant_sets(),
            "compression": target.compression,
        }
        for index in range(processes)
    ]
    counters_before = read_tcp_counters()
    server_before = cpu_seconds(target.web)
    storms = await pool.request_all(
        "connect", payloads, args.connect_timeout + STEP_TIMEOUT
    )
    server_after = cpu_seconds(target.web)
    counters_after = read_tcp_counters()
    answers = await pool.request_all(
        "settle", [None] * processes, SETTLE + STEP_TIMEOUT
    )
    figures = summarise_connect(
        clients,
        storms,
        answers,
        (server_before, server_after),
        (counters_before, counters_after),
    )
    last_handshake = max(
        (answer["last_handshake"] for answer in answers if answer["last_handshake"]),
        default=None,
    )
    return figures, last_handshake


async def measure_window(
    target: Target,
    pool: ClientPool,
    args: argparse.Namespace,
    grace: float,
    last_handshake: float,
) -> dict[str, Any]:
    """Warm up, then measure --broadcasts broadcasts to the connected clients."""
    logger.info("%s: warming up", target.name)
    warm, warm_complete = await wait_for_warm_up(
        target, pool, last_handshake, args.interval
    )
    bytes_before = await pool.received_bytes()
    delivered_before = await delivered(target)
    before = await sample_cpu(target, pool)
    last = warm + args.broadcasts
    logger.info("%s: measuring %d broadcasts", target.name, args.broadcasts)
    complete = await wait_for_window(target, pool, last, args, grace)
    after = await sample_cpu(target, pool)
    bytes_after = await pool.received_bytes()
    delivered_after = await delivered(target)
    window = target.broadcasts[warm + 1 : last + 1]
    collected = await pool.request_all(
        "collect",
        [list(dict.fromkeys(b.key for b in window))] * args.client_processes,
        STEP_TIMEOUT,
    )
    results = analyse_window(window, collected)
    return {
        "warm_up": {
            "timestamp": target.broadcasts[warm].key,
            "reached_every_client": warm_complete,
        },
        "window": {
            "broadcasts": len(window),
            "first_timestamp": window[0].key,
            "last_timestamp": window[-1].key,
            "last_reached_every_client": complete,
            "grace_s": grace,
        },
        **results,
        "wire": summarise_wire(bytes_after - bytes_before, results["deliveries"]),
        "server_delivery": summarise_server_delivery(delivered_before, delivered_after),
        "cpu": summarise_cpu(
            before,
            after,
            results["deliveries"],
            len(window),
            service=isinstance(target, ServiceTarget),
        ),
    }


async def delivered(target: Target) -> tuple[float, float] | None:
    """The service's own delivery figures so far (None for the bare server)."""
    if not isinstance(target, ServiceTarget):
        return None
    return await asyncio.to_thread(target.delivered)


async def sample_cpu(target: Target, pool: ClientPool) -> CpuSample:
    """Read the CPU times of the target's processes and of the client processes."""
    return CpuSample(
        at=time.monotonic(),
        web=cpu_seconds(target.web),
        publisher=cpu_seconds([target.publisher]) if target.publisher else None,
        redis=await target.redis_cpu(),
        clients=pool.cpu(),
    )


async def wait_for_warm_up(
    target: Target, pool: ClientPool, after: float, interval: float
) -> tuple[int, bool]:
    """Return the index of the first broadcast published after `after` that every
    open client received, and True; on timeout the first one published, and False."""
    deadline = time.monotonic() + max(30.0, 10 * interval)
    while True:
        open_now, counts = await pool.status()
        if open_now == 0:
            raise FanoutError(f"{target.name}: every client was disconnected")
        candidates = [
            index
            for index, broadcast in enumerate(target.broadcasts)
            if broadcast.published_at > after
        ]
        for index in candidates:
            if counts[target.broadcasts[index].key] >= open_now:
                return index, True
        if time.monotonic() > deadline:
            if candidates:
                logger.warning(
                    "%s: no broadcast reached every client; warming up on the first",
                    target.name,
                )
                return candidates[0], False
            raise FanoutError(
                f"{target.name}: no broadcast within {max(30.0, 10 * interval):g} s "
                "of the clients connecting"
            )
        await asyncio.sleep(POLL)


async def wait_for_window(
    target: Target, pool: ClientPool, last: int, args: argparse.Namespace, grace: float
) -> bool:
    """Wait until broadcast `last` reached every open client or its grace passed;
    return whether it reached them all."""
    deadline = time.monotonic() + (args.broadcasts + 3) * args.interval + STEP_TIMEOUT
    while True:
        if len(target.broadcasts) > last:
            broadcast = target.broadcasts[last]
            open_now, counts = await pool.status()
            if counts[broadcast.key] >= open_now:
                return True
            if time.time() > broadcast.published_at + grace:
                return False
        elif time.monotonic() > deadline:
            raise FanoutError(
                f"{target.name}: only {len(target.broadcasts)} broadcasts in all; "
                f"the {args.broadcasts} of the window did not come in time"
            )
        await asyncio.sleep(POLL)
