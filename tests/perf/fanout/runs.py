"""One run: the chosen targets in turn, the report assembled, everything cleaned up."""

import argparse
import asyncio
import logging
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.perf.fanout import finish
from tests.perf.fanout.clients import SETTLE
from tests.perf.fanout.fleetreport import judge_fleet
from tests.perf.fanout.fleettarget import FleetTarget
from tests.perf.fanout.hostreport import judge
from tests.perf.fanout.hosttarget import HostsTarget
from tests.perf.fanout.measurement import measure
from tests.perf.fanout.report import compare, describe_machine, weigh_compression
from tests.perf.fanout.resources import raise_file_limit
from tests.perf.fanout.targets import (
    BareTarget,
    DeflateTarget,
    ServiceTarget,
    Target,
    build_payload,
    choose_redis,
)

logger = logging.getLogger(__name__)

TARGETS = ("bare", "service")
# --hosts mode: the single-host service, then the same with N hosts and agents.
HOSTS_TARGETS = ("service", "hosts")
# --fleet mode: the single-host service, then N hosts' agents and fleet viewers.
FLEET_TARGETS = ("service", "fleet")
# --compress: the service with plain clients, then with compressing ones.
COMPRESS_TARGETS = ("service", "deflate")
ALL_TARGETS = ("bare", "service", "hosts", "fleet", "deflate")


def chosen_targets(args: argparse.Namespace) -> list[str]:
    """The targets a run measures, in order."""
    if args.only:
        return [args.only]
    if args.fleet:
        return list(FLEET_TARGETS)
    if args.hosts:
        return list(HOSTS_TARGETS)
    return list(COMPRESS_TARGETS if args.compress else TARGETS)


async def run_until_signalled(args: argparse.Namespace) -> dict[str, Any]:
    """run(), cancelled (and so cleaned up) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the chosen targets in turn and return the report."""
    file_limit = raise_file_limit()
    started = time.monotonic()
    targets = chosen_targets(args)
    grace = max(2 * args.interval, 5.0)
    prefix = f"perf-fanout-{uuid.uuid4().hex[:12]}"
    workdir = Path(tempfile.mkdtemp(prefix="fanout-"))
    embedded = None
    failed = True
    try:
        payload = await asyncio.to_thread(build_payload)
        config: dict[str, Any] = {
            "clients": args.clients,
            "workers": args.workers,
            "interval": args.interval,
            "broadcasts": args.broadcasts,
            "payload_bytes": len(payload),
            "client_processes": args.client_processes,
            "connect_timeout": args.connect_timeout,
            "grace_s": grace,
            "settle_s": SETTLE,
            # What the clients offer, per target: nothing but on "deflate".
            "compression": (
                {"deflate": "permessage-deflate"} if "deflate" in targets else None
            ),
            "targets": targets,
        }
        if args.hosts:
            config["hosts"] = args.hosts
        if args.fleet:
            config["grant_sets"] = args.grant_sets
        report: dict[str, Any] = {"machine": describe_machine(file_limit)}
        if {"service", "hosts", "fleet", "deflate"} & set(targets):
            # --hosts counts Redis's commands: a Redis of the run's own by default.
            redis_url, source, embedded = await choose_redis(
                args.redis_url, workdir, own=bool(args.hosts)
            )
            config.update(redis=source, key_prefix=prefix)
        results: dict[str, Any] = {}
        for name in targets:
            if name == "bare":
                target: Target = BareTarget(workdir, payload, args.interval)
            elif name in ("hosts", "fleet"):
                many = (workdir, args.workers, args.interval, redis_url, prefix)
                many += (args.hosts, payload, args.connect_timeout)
                target = (
                    FleetTarget(*many, grant_sets=args.grant_sets)
                    if name == "fleet"
                    else HostsTarget(*many)
                )
            else:
                service_class = DeflateTarget if name == "deflate" else ServiceTarget
                target = service_class(
                    workdir, args.workers, args.interval, redis_url, prefix
                )
            results[name] = await run_target(target, args, grace)
        report.update(
            config=config,
            bare=results.get("bare"),
            service=results.get("service"),
            ratios=weigh(results, "bare", "service", compare),
        )
        if "deflate" in targets:
            report.update(
                deflate=results.get("deflate"),
                deflate_vs_plain=weigh(
                    results, "service", "deflate", weigh_compression
                ),
            )
        if args.fleet:
            report.update(
                fleet=results.get("fleet"),
                fleet_vs_single=weigh(results, "service", "fleet", judge_fleet),
            )
        elif args.hosts:
            report.update(
                hosts=results.get("hosts"),
                hosts_vs_single=weigh(results, "service", "hosts", judge),
            )
        report.update(
            elapsed_s=round(time.monotonic() - started, 1),
        )
        # A target that could not be measured: its server's log may say why.
        failed = any("error" in result for result in results.values())
        return report
    except asyncio.CancelledError:
        failed = False  # interrupted: nothing to look into
        raise
    finally:
        if embedded is not None:
            await finish(asyncio.to_thread(embedded.stop))
        keep_logs(workdir, failed)


def weigh(
    results: dict[str, Any],
    base: str,
    other: str,
    how: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
) -> dict[str, Any] | None:
    """Target `other`'s figures against `base`'s, as `how` sets them out; None
    unless both were measured."""
    if base in results and other in results:
        return how(results[base], results[other])
    return None


def keep_logs(workdir: Path, failed: bool) -> None:
    """Delete the run's directory, unless it failed and the servers left logs."""
    if failed and any(workdir.glob("*.log")):
        logger.info("logs kept in %s", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


async def run_target(
    target: Target, args: argparse.Namespace, grace: float
) -> dict[str, Any]:
    """Start a target, measure it and stop it, whatever happens."""
    logger.info("%s: starting", target.name)
    try:
        await target.start(args.clients)
        return await measure(target, args, grace)
    finally:
        logger.info("%s: stopping", target.name)
        await finish(target.stop())
