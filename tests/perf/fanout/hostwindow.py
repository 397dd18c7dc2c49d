"""--hosts mode's procedure once the viewers are connected.

Per host, a warm-up snapshot sent after the last handshake that every viewer of
that host received; then each host's next --broadcasts snapshots, CPU, Redis CPU
and Redis's command count sampled before the first and after the last; then half
of each host's viewers are closed and the same is sampled over as many intervals,
then all but one per host and again: Redis commands per snapshot at three viewer
counts of the same run, and the web workers' CPU per snapshot with a single
delivery each, the cost of ingest.
"""

import argparse
import asyncio
import logging
import time
from collections import Counter
from typing import Any

from tests.perf.fanout import FanoutError
from tests.perf.fanout.broadcasts import Broadcast, host_key
from tests.perf.fanout.clients import SETTLE, ClientPool
from tests.perf.fanout.hostreport import analyse_hosts, summarise_phase
from tests.perf.fanout.hosttarget import HostsTarget
from tests.perf.fanout.resources import cpu_seconds

logger = logging.getLogger(__name__)

POLL = 0.1
STEP_TIMEOUT = 30.0


async def measure_hosts_window(
    target: HostsTarget,
    pool: ClientPool,
    args: argparse.Namespace,
    grace: float,
    last_handshake: float,
) -> dict[str, Any]:
    """Warm up every host, measure the window, then the phase with few viewers."""
    logger.info("hosts: warming up")
    warm, warm_complete = await wait_for_warm_up(target, pool, last_handshake, args)
    open_now, _, viewers = await status(pool)
    before = await sample(target, pool)
    logger.info("hosts: measuring %d snapshots per host", args.broadcasts)
    complete = await wait_for_window(target, pool, warm, args, grace)
    after = await sample(target, pool)
    windows = {
        name: target.sent[name][index + 1 : index + 1 + args.broadcasts]
        for name, index in warm.items()
    }
    collected = await pool.request_all(
        "collect_hosts",
        [
            {
                name: [host_key(name, b.key) for b in window]
                for name, window in windows.items()
            }
        ]
        * len(pool.links),
        STEP_TIMEOUT,
    )
    results = analyse_hosts(windows, collected)
    # Deliveries while CPU was measured: each host's sends times its viewers.
    deliveries = sum(
        (after["sent"][name] - before["sent"][name]) * viewers.get(name, 0)
        for name in target.hosts
    )
    fewer = await measure_fewer_viewers(target, pool, args)
    return {
        "warm_up": {
            "reached_every_viewer": warm_complete,
            "viewers_open": open_now,
        },
        "window": {
            "snapshots_per_host": args.broadcasts,
            "last_reached_every_viewer": complete,
            "grace_s": grace,
        },
        **results,
        "cpu": summarise_phase(before, after, deliveries),
        "fewer_viewers": fewer,
    }


async def measure_fewer_viewers(
    target: HostsTarget, pool: ClientPool, args: argparse.Namespace
) -> dict[str, Any]:
    """Close half of each host's viewers, then all but one per host; after each,
    let it settle and sample over as many intervals as the window had snapshots
    per host.

    With half, every web worker still almost surely holds viewers of every host,
    so Redis's work per snapshot should not change at all; with one per host, each
    host's group has one member process left.
    """
    processes = len(pool.links)
    # Viewer i is in client process i mod P and watches host i mod N: each host's
    # first viewer is kept by the process that holds it.
    one = [
        {name: 1 for index, name in enumerate(target.hosts) if index % processes == p}
        for p in range(processes)
    ]
    phases = {}
    for phase, keep in (("half", [None] * processes), ("one_per_host", one)):
        await pool.request_all("thin", keep, STEP_TIMEOUT)
        await asyncio.sleep(SETTLE + 2 * args.interval)
        _, _, viewers = await status(pool)
        logger.info("hosts: %d viewers left; measuring again", sum(viewers.values()))
        before = await sample(target, pool)
        await asyncio.sleep(args.broadcasts * args.interval)
        after = await sample(target, pool)
        deliveries = sum(
            (after["sent"][name] - before["sent"][name]) * viewers.get(name, 0)
            for name in target.hosts
        )
        figures = summarise_phase(before, after, deliveries)
        phases[phase] = {"viewers": sum(viewers.values()), **figures}
    return phases


async def status(pool: ClientPool) -> tuple[int, Counter[str], Counter[str]]:
    """Open viewers, per key how many of them have it, and open viewers per host."""
    answers = await pool.request_all("status", [None] * len(pool.links), STEP_TIMEOUT)
    counts: Counter[str] = Counter()
    by_host: Counter[str] = Counter()
    for answer in answers:
        counts.update(answer["counts"])
        by_host.update(answer["open_by_host"])
    return sum(answer["open"] for answer in answers), counts, by_host


async def sample(target: HostsTarget, pool: ClientPool) -> dict[str, Any]:
    """CPU of every process (the publisher's too), Redis's CPU and command count,
    and per host how many snapshots its agent had sent by then."""
    moment = time.time()
    figures = {
        "at": time.monotonic(),
        "web": cpu_seconds(target.web),
        "publisher": cpu_seconds([target.publisher]) if target.publisher else None,
        "redis_cpu": await target.redis_cpu(),
        "redis_commands": await target.redis_commands(),
        "agents_cpu": target.fleet.cpu()[0] if target.fleet else None,
        "clients": pool.cpu(),
    }
    figures["sent"] = await target.sent_until(moment)
    return figures


def reached(
    broadcast: Broadcast, name: str, counts: Counter[str], viewers: Counter[str]
) -> bool:
    """Whether every open viewer of host `name` has this snapshot of it."""
    return counts[host_key(name, broadcast.key)] >= viewers.get(name, 0)


async def wait_for_warm_up(
    target: HostsTarget, pool: ClientPool, after: float, args: argparse.Namespace
) -> tuple[dict[str, int], bool]:
    """Per host, the index of the first snapshot sent after `after` that every open
    viewer of it received, and True; on timeout the first one sent, and False."""
    within = max(30.0, 10 * args.interval)
    deadline = time.monotonic() + within
    warm: dict[str, int] = {}
    while True:
        open_now, counts, viewers = await status(pool)
        if open_now == 0:
            raise FanoutError("hosts: every viewer was disconnected")
        check_agents(target)
        for name in target.hosts:
            if name in warm:
                continue
            for index, broadcast in enumerate(target.sent[name]):
                if broadcast.published_at > after and reached(
                    broadcast, name, counts, viewers
                ):
                    warm[name] = index
                    break
        if len(warm) == len(target.hosts):
            return warm, True
        if time.monotonic() > deadline:
            missing = [name for name in target.hosts if name not in warm]
            logger.warning(
                "hosts: no snapshot reached every viewer of %d host(s), e.g. %s; "
                "warming up on the first",
                len(missing),
                missing[0],
            )
            for name in missing:
                firsts = [
                    index
                    for index, broadcast in enumerate(target.sent[name])
                    if broadcast.published_at > after
                ]
                if not firsts:
                    raise FanoutError(
                        f"hosts: {name}'s agent sent nothing within {within:g} s "
                        "of the viewers connecting"
                    )
                warm[name] = firsts[0]
            return warm, False
        await asyncio.sleep(POLL)


async def wait_for_window(
    target: HostsTarget,
    pool: ClientPool,
    warm: dict[str, int],
    args: argparse.Namespace,
    grace: float,
) -> bool:
    """Wait until each host's last window snapshot reached every open viewer of it
    or its grace passed; return whether all of them reached every viewer."""
    deadline = time.monotonic() + (args.broadcasts + 3) * args.interval + STEP_TIMEOUT
    done: dict[str, bool] = {}
    while True:
        _, counts, viewers = await status(pool)
        check_agents(target)
        for name, index in warm.items():
            last = index + args.broadcasts
            if name in done or len(target.sent[name]) <= last:
                continue
            broadcast = target.sent[name][last]
            if reached(broadcast, name, counts, viewers):
                done[name] = True
            elif time.time() > broadcast.published_at + grace:
                done[name] = False
        if len(done) == len(warm):
            return all(done.values())
        if time.monotonic() > deadline:
            raise FanoutError(
                f"hosts: {len(warm) - len(done)} host(s) did not send the "
                f"{args.broadcasts} snapshots of the window in time"
            )
        await asyncio.sleep(POLL)


def check_agents(target: HostsTarget) -> None:
    """Stop the run if the server closed an agent (its host's data stopped)."""
    if target.closed_agents:
        name, code = next(iter(target.closed_agents.items()))
        raise FanoutError(
            f"hosts: the server closed {len(target.closed_agents)} agent(s), "
            f"e.g. {name}'s with {code}; errors: {target.agent_errors or 'none'}"
        )
