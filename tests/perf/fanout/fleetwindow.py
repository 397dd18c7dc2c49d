"""--fleet mode's procedure once the viewers are connected.

A fleet frame is known by its timestamp, the moment it was built: the tool learns
the frames from what the viewers received. A warm-up frame built after the last
handshake that every viewer received; then the next --broadcasts frames, CPU
sampled before the first and after the last; then all viewers but one per grant
set in each client process are closed and the CPU sampled again over as many
intervals, with the agents still sending and their hosts still live: the web
workers' work that does not grow with viewers (ingest, building and framing each
frame, timers), taken off the window's to leave what a fleet delivery costs.
"""

import argparse
import asyncio
import logging
import time
from typing import Any

from tests.perf.fanout import FanoutError
from tests.perf.fanout.broadcasts import Broadcast, parse_timestamp
from tests.perf.fanout.clients import SETTLE, ClientPool
from tests.perf.fanout.fleetreport import analyse_fleet, net_of_baseline
from tests.perf.fanout.fleettarget import FleetTarget
from tests.perf.fanout.hostreport import summarise_phase
from tests.perf.fanout.hostwindow import check_agents, sample, status

logger = logging.getLogger(__name__)

POLL = 0.1
STEP_TIMEOUT = 30.0


def frames_after(counts: dict[str, int], moment: float) -> list[Broadcast]:
    """The frames any viewer received that were built after `moment`, in order."""
    frames = []
    for key in counts:
        try:
            built, _ = parse_timestamp(key)
        except ValueError:
            continue
        if built > moment:
            frames.append(Broadcast(key, built))
    return sorted(frames, key=lambda frame: frame.published_at)


async def measure_fleet_window(
    target: FleetTarget,
    pool: ClientPool,
    args: argparse.Namespace,
    grace: float,
    last_handshake: float,
) -> dict[str, Any]:
    """Warm up, measure the window, then the phase without viewers."""
    logger.info("fleet: warming up")
    warm, warm_complete = await wait_for_warm_up(target, pool, last_handshake, args)
    open_now, _, _ = await status(pool)
    before = await sample(target, pool)
    logger.info("fleet: measuring %d frames", args.broadcasts)
    window, complete = await wait_for_window(target, pool, warm, args, grace)
    after = await sample(target, pool)
    collected = await pool.request_all(
        "collect_fleet",
        [[frame.key for frame in window]] * len(pool.links),
        STEP_TIMEOUT,
    )
    results = analyse_fleet(warm, window, collected, target.sets, args.interval)
    cpu = summarise_phase(before, after, results["deliveries"])
    baseline = await measure_few_viewers(target, pool, args)
    cpu.update(net_of_baseline(before, after, baseline, results["deliveries"]))
    return {
        "warm_up": {
            "timestamp": warm.key,
            "reached_every_viewer": warm_complete,
            "viewers_open": open_now,
        },
        "window": {
            "frames": len(window),
            "first_timestamp": window[0].key,
            "last_timestamp": window[-1].key,
            "last_reached_every_viewer": complete,
            "grace_s": grace,
        },
        **results,
        "cpu": cpu,
        "few_viewers": {
            "viewers": baseline[0]["viewers"],
            **summarise_phase(baseline[0], baseline[1], baseline[1]["deliveries"]),
        },
    }


async def measure_few_viewers(
    target: FleetTarget, pool: ClientPool, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keep one viewer per grant set in each client process, let it settle, and
    sample over --broadcasts intervals; each sample with the viewers left and the
    frames they had received by then (the deliveries in between)."""
    one_each = dict.fromkeys(target.sets, 1)
    await pool.request_all("thin", [one_each] * len(pool.links), STEP_TIMEOUT)
    await asyncio.sleep(SETTLE + 2 * args.interval)
    samples = []
    for wait in (0.0, args.broadcasts * args.interval):
        await asyncio.sleep(wait)
        open_now, counts, _ = await status(pool)
        figures = await sample(target, pool)
        figures.update(viewers=open_now, deliveries=sum(counts.values()))
        samples.append(figures)
        if wait == 0.0:
            logger.info("fleet: %d viewers left; measuring again", open_now)
    before, after = samples
    after["deliveries"] -= before["deliveries"]
    return before, after


async def wait_for_warm_up(
    target: FleetTarget, pool: ClientPool, after: float, args: argparse.Namespace
) -> tuple[Broadcast, bool]:
    """The first frame built after `after` that every open viewer received, and
    True; on timeout the first one built after it, and False."""
    within = max(30.0, 10 * args.interval)
    deadline = time.monotonic() + within
    while True:
        open_now, counts, _ = await status(pool)
        if open_now == 0:
            raise FanoutError("fleet: every viewer was disconnected")
        check_agents(target)
        frames = frames_after(counts, after)
        for frame in frames:
            if counts[frame.key] >= open_now:
                return frame, True
        if time.monotonic() > deadline:
            if not frames:
                raise FanoutError(
                    f"fleet: no frame built within {within:g} s of the viewers "
                    "connecting"
                )
            logger.warning("fleet: no frame reached every viewer; warming up on one")
            return frames[0], False
        await asyncio.sleep(POLL)


async def wait_for_window(
    target: FleetTarget,
    pool: ClientPool,
    warm: Broadcast,
    args: argparse.Namespace,
    grace: float,
) -> tuple[list[Broadcast], bool]:
    """The --broadcasts frames built after the warm-up one, once the last reached
    every open viewer or its grace passed, and whether it reached them all."""
    deadline = time.monotonic() + (args.broadcasts + 3) * args.interval + STEP_TIMEOUT
    while True:
        open_now, counts, _ = await status(pool)
        check_agents(target)
        window = frames_after(counts, warm.published_at)[: args.broadcasts]
        if len(window) == args.broadcasts:
            last = window[-1]
            if counts[last.key] >= open_now:
                return window, True
            if time.time() > last.published_at + grace:
                return window, False
        if time.monotonic() > deadline:
            raise FanoutError(
                f"fleet: {len(window)} of the {args.broadcasts} frames of the window "
                "came in time"
            )
        await asyncio.sleep(POLL)
