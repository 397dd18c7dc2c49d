"""Benchmark of channels_redis' core and pub/sub layers broadcasting to one group.

For each layer (`channels_redis.core.RedisChannelLayer`, "core", and
`channels_redis.pubsub.RedisPubSubChannelLayer`, "pubsub") and each group size N, in
one run and side by side, it measures:

- fan-out latency: N channels made in this process join one group; per broadcast,
  the time from calling `group_send` with a ~2 KB `metrics.snapshot` event until all
  N channels have received it (median and p95 over the broadcasts, in ms);
- Redis server work per broadcast: commands executed, from `INFO commandstats`
  (counting those run inside Lua scripts, not counting the INFO calls), and network
  bytes in and out, from `INFO stats`;
- stale members after a crash: a child process joins 50 channels to the group and is
  killed with SIGKILL, so it never leaves the group; then it reports how many members
  Redis still holds for the group and how long a `group_send` takes with them there.

Run from the project root against a quiet Redis (other clients' commands would be
counted too); no Django settings are needed:

    .venv/bin/python -m tests.perf.channel_layers [--members 10,100,1000]
        [--broadcasts 20] [--redis-url redis://127.0.0.1:6379/0]

Progress goes to stderr and one JSON object to stdout. Every key it writes is under
a random prefix and is deleted before it exits; nothing else in Redis is touched.
"""

import argparse
import asyncio
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any, TypeVar

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis import asyncio as aioredis

from tests.support.redis_keys import delete_prefixed
from tests.support.stats import percentile

logger = logging.getLogger("channel_layers")

T = TypeVar("T")
Layer = RedisChannelLayer | RedisPubSubChannelLayer

LAYERS: dict[str, type[Layer]] = {
    "core": RedisChannelLayer,
    "pubsub": RedisPubSubChannelLayer,
}
# The project's group and event type (metrics.publisher), repeated so that this script
# needs neither Django nor the project's settings.
GROUP = "metrics"
# A group nobody joins.
WARM_UP_GROUP = "warm-up"
EVENT_TYPE = "metrics.snapshot"
PAYLOAD_TEXT = "x" * 2000
# Every key and pub/sub channel of this run starts with this.
RUN_PREFIX = f"perf-channel-layers-{uuid.uuid4().hex[:12]}-"

WARM_UP_BROADCASTS = 2
# Let receivers block on Redis before the clock starts, as idle consumers do.
RECEIVERS_SETTLE = 0.01
STALE_MEMBERS = 50
STALE_SENDS = 5
# How long to watch for Redis dropping a killed process's members on its own.
STALE_WATCH = 1.0
POLL_INTERVAL = 0.01
STEP_TIMEOUT = 30.0
SETUP_TIMEOUT = 60.0
# The doomed child exits on its own after this if nobody kills it.
CHILD_LIFETIME = 120.0


def bounded(awaitable: Awaitable[T], timeout: float = STEP_TIMEOUT) -> Awaitable[T]:
    """Return `awaitable` wrapped so that awaiting it gives up after `timeout` s."""
    return asyncio.wait_for(awaitable, timeout)


def make_layer(kind: str, url: str, prefix: str) -> Layer:
    """Return a channel layer of `kind` on `url` whose names all start with prefix."""
    hosts = [{"address": url, "socket_timeout": None, "max_connections": 10000}]
    return LAYERS[kind](hosts=hosts, prefix=prefix)


def make_event() -> dict[str, Any]:
    """Return a broadcast event shaped and sized like a metrics snapshot."""
    return {"type": EVENT_TYPE, "ts": time.time(), "text": PAYLOAD_TEXT}


def core_group_key(prefix: str) -> str:
    """Return the sorted set holding the group's members, as core._group_key does."""
    return f"{prefix}:group:{GROUP}"


def pubsub_group_channel(prefix: str) -> str:
    """Return the group's pub/sub channel, as pubsub._get_group_channel_name does."""
    return f"{prefix}__group__{GROUP}"


async def close_layer(layer: Layer) -> None:
    """Close the layer's connections; pubsub's flush also drops its subscriptions."""
    if isinstance(layer, RedisChannelLayer):
        # Not flush(): it runs KEYS over the whole keyspace; delete_prefixed() scans.
        await bounded(layer.close_pools())
    else:
        await bounded(layer.flush())


@dataclass(frozen=True)
class ServerCounters:
    """Redis' cumulative command calls and network bytes at one moment."""

    calls: dict[str, int]
    net_in: int
    net_out: int

    def minus(self, earlier: "ServerCounters") -> "ServerCounters":
        """Return the work done between `earlier` and these counters."""
        calls = {
            name: count - earlier.calls.get(name, 0)
            for name, count in self.calls.items()
            if count != earlier.calls.get(name, 0)
        }
        return ServerCounters(
            calls, self.net_in - earlier.net_in, self.net_out - earlier.net_out
        )


async def read_counters(client: aioredis.Redis) -> ServerCounters:
    """Return the server's counters, leaving out the INFO command itself."""
    info = await bounded(client.info("stats", "commandstats"))
    calls = {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in info.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    }
    return ServerCounters(
        calls, info["total_net_input_bytes"], info["total_net_output_bytes"]
    )


async def measure_info_overhead(client: aioredis.Redis) -> ServerCounters:
    """Return the bytes one pair of counter readings adds by itself."""
    pairs = []
    for _ in range(3):
        first = await read_counters(client)
        pairs.append((await read_counters(client)).minus(first))
    # The smallest of a few tries, in case another client was busy meanwhile.
    return ServerCounters(
        {}, min(p.net_in for p in pairs), min(p.net_out for p in pairs)
    )


def summarise_work(
    delta: ServerCounters, overhead: ServerCounters, count: int, unit: str
) -> dict[str, Any]:
    """Return Redis' work between two readings, per operation of `unit`."""
    by_command = {
        name: round(calls / count, 2) for name, calls in sorted(delta.calls.items())
    }
    return {
        f"redis_calls_per_{unit}": round(sum(delta.calls.values()) / count, 2),
        f"redis_calls_per_{unit}_by_command": by_command,
        f"redis_net_in_bytes_per_{unit}": round(
            (delta.net_in - overhead.net_in) / count
        ),
        f"redis_net_out_bytes_per_{unit}": round(
            (delta.net_out - overhead.net_out) / count
        ),
    }


async def count_subscribers(client: aioredis.Redis, channel: str) -> int:
    """Return how many connections are subscribed to a pub/sub channel."""
    ((_, subscribers),) = await bounded(client.pubsub_numsub(channel))
    return subscribers


async def wait_for_subscribers(
    client: aioredis.Redis, channel: str, expected: int
) -> None:
    """Wait until Redis has processed the subscriptions to `channel`."""

    async def poll() -> None:
        # Polling, not an Event: the state is in Redis, where nothing can signal us.
        while await count_subscribers(client, channel) != expected:  # noqa: ASYNC110
            await asyncio.sleep(POLL_INTERVAL)

    await bounded(poll())


async def broadcast_once(layer: Layer, channels: list[str]) -> float:
    """Send one event to the group; return ms until every channel has received it."""
    receivers = [asyncio.create_task(layer.receive(name)) for name in channels]
    try:
        await asyncio.sleep(RECEIVERS_SETTLE)
        event = make_event()
        started = time.perf_counter()
        await bounded(layer.group_send(GROUP, event))
        messages = await bounded(asyncio.gather(*receivers))
        elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        for receiver in receivers:
            receiver.cancel()
    if any(message["ts"] != event["ts"] for message in messages):
        raise RuntimeError("a channel received some other message")
    return elapsed_ms


async def measure_fanout(
    kind: str,
    members: int,
    broadcasts: int,
    url: str,
    client: aioredis.Redis,
    overhead: ServerCounters,
) -> dict[str, Any]:
    """Return latency and Redis work of broadcasts to `members` local channels."""
    prefix = f"{RUN_PREFIX}{kind}-{members}-"
    layer = make_layer(kind, url, prefix)
    try:
        started = time.perf_counter()
        channels = [await bounded(layer.new_channel()) for _ in range(members)]
        for name in channels:
            await bounded(layer.group_add(GROUP, name))
        if kind == "pubsub":
            await wait_for_subscribers(client, pubsub_group_channel(prefix), 1)
        setup_s = time.perf_counter() - started
        for _ in range(WARM_UP_BROADCASTS):
            await broadcast_once(layer, channels)
        before = await read_counters(client)
        latencies = [await broadcast_once(layer, channels) for _ in range(broadcasts)]
        if isinstance(layer, RedisChannelLayer):
            # Its receives leave a backup-queue clean-up running; count it too.
            await bounded(layer.wait_received())
        after = await read_counters(client)
    finally:
        await close_layer(layer)
        await delete_prefixed(client, prefix)
    return {
        "layer": kind,
        "members": members,
        "broadcasts": broadcasts,
        "p50_ms": round(statistics.median(latencies), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "max_ms": round(max(latencies), 3),
        **summarise_work(after.minus(before), overhead, broadcasts, "broadcast"),
        "setup_s": round(setup_s, 3),
    }


def run_doomed_member(kind: str, url: str, prefix: str, ready: Event) -> None:
    """Child process: join the group with many channels, then wait to be killed."""

    async def join_and_wait() -> None:
        layer = make_layer(kind, url, prefix)
        for _ in range(STALE_MEMBERS):
            await bounded(layer.group_add(GROUP, await bounded(layer.new_channel())))
        ready.set()
        await asyncio.sleep(CHILD_LIFETIME)

    asyncio.run(join_and_wait())


async def count_members(kind: str, client: aioredis.Redis, prefix: str) -> int:
    """Return the group's members as Redis sees them for a layer of `kind`."""
    if kind == "core":
        return await bounded(client.zcard(core_group_key(prefix)))
    return await count_subscribers(client, pubsub_group_channel(prefix))


async def watch_members_go(
    kind: str, client: aioredis.Redis, prefix: str
) -> float | None:
    """Return ms until the group has no members, or None if it keeps some."""
    started = time.perf_counter()
    while time.perf_counter() - started < STALE_WATCH:
        if await count_members(kind, client, prefix) == 0:
            return round((time.perf_counter() - started) * 1000, 1)
        await asyncio.sleep(POLL_INTERVAL)
    return None


async def count_stranded(client: aioredis.Redis, prefix: str) -> int:
    """Return messages core's group_send left in inboxes nobody reads."""

    async def collect() -> list[bytes]:
        pattern = f"{prefix}specific.*"
        return [key async for key in client.scan_iter(match=pattern, count=1000)]

    inboxes = [
        key for key in await bounded(collect()) if not key.endswith(b"$inflight")
    ]
    return sum([await bounded(client.zcard(key)) for key in inboxes])


async def measure_stale(
    kind: str, url: str, client: aioredis.Redis, overhead: ServerCounters
) -> dict[str, Any]:
    """Return what a SIGKILLed process's group members cost a layer of `kind`."""
    prefix = f"{RUN_PREFIX}stale-{kind}-"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(
        target=run_doomed_member, args=(kind, url, prefix, ready), daemon=True
    )
    publisher = make_layer(kind, url, prefix)
    child.start()
    try:
        # Opens the publisher's connection, so its handshake is not counted below.
        await bounded(publisher.group_send(WARM_UP_GROUP, make_event()))
        joined = await bounded(
            asyncio.to_thread(ready.wait, SETUP_TIMEOUT), SETUP_TIMEOUT + 5
        )
        if not joined:
            raise TimeoutError("the child process did not join the group")
        if kind == "pubsub":
            await wait_for_subscribers(client, pubsub_group_channel(prefix), 1)
        members_before = await count_members(kind, client, prefix)
        child.kill()  # SIGKILL: no disconnect handler, no group_discard
        await bounded(asyncio.to_thread(child.join, STEP_TIMEOUT), STEP_TIMEOUT + 5)
        members_at_exit = await count_members(kind, client, prefix)
        gone_after_ms = await watch_members_go(kind, client, prefix)
        members_left = await count_members(kind, client, prefix)

        before = await read_counters(client)
        durations = []
        for _ in range(STALE_SENDS):
            started = time.perf_counter()
            await bounded(publisher.group_send(GROUP, make_event()))
            durations.append((time.perf_counter() - started) * 1000)
        after = await read_counters(client)

        result: dict[str, Any] = {
            "child_exit_code": child.exitcode,
            "members_measure": (
                f"ZCARD {core_group_key('<prefix>')}"
                if kind == "core"
                else f"PUBSUB NUMSUB {pubsub_group_channel('<prefix>')}"
            ),
            "members_before_kill": members_before,
            "members_at_exit": members_at_exit,
            "members_left": members_left,
            "members_gone_after_ms": gone_after_ms,
            "group_sends": STALE_SENDS,
            "group_send_p50_ms": round(statistics.median(durations), 3),
            **summarise_work(after.minus(before), overhead, STALE_SENDS, "send"),
        }
        if kind == "core":
            result["group_key_ttl_s"] = await bounded(
                client.ttl(core_group_key(prefix))
            )
            result["messages_stranded_in_dead_inbox"] = await count_stranded(
                client, prefix
            )
        else:
            result["pubsub_channels_left"] = len(
                await bounded(client.pubsub_channels(f"{prefix}*"))
            )
        return result
    finally:
        if child.is_alive():
            child.kill()
            await bounded(asyncio.to_thread(child.join, STEP_TIMEOUT), STEP_TIMEOUT + 5)
        await close_layer(publisher)
        await delete_prefixed(client, prefix)


async def describe_machine(client: aioredis.Redis) -> dict[str, Any]:
    """Return what the numbers depend on: host, Python, Redis and library versions."""
    server = await bounded(client.info("server", "clients"))
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": server["redis_version"],
        "redis_connected_clients_at_start": server["connected_clients"],
        **{
            package.replace("-", "_"): importlib.metadata.version(package)
            for package in ("channels", "channels-redis", "redis")
        },
    }


async def run(members: list[int], broadcasts: int, url: str) -> dict[str, Any]:
    """Run every measurement and return them as one JSON-safe dict."""
    client = aioredis.Redis.from_url(url, socket_timeout=STEP_TIMEOUT)
    started = time.perf_counter()
    try:
        machine = await describe_machine(client)
        overhead = await measure_info_overhead(client)
        results = []
        for size in members:
            for kind in LAYERS:
                logger.info("fan-out: %s layer, %d members", kind, size)
                results.append(
                    await measure_fanout(kind, size, broadcasts, url, client, overhead)
                )
        stale = {}
        for kind in LAYERS:
            logger.info("stale members: %s layer, child killed with SIGKILL", kind)
            stale[kind] = await measure_stale(kind, url, client, overhead)
    finally:
        keys_left = await delete_prefixed(client, RUN_PREFIX)
        await client.aclose()
    return {
        "machine": machine,
        "settings": {
            "members": members,
            "broadcasts": broadcasts,
            "warm_up_broadcasts": WARM_UP_BROADCASTS,
            "payload_text_bytes": len(PAYLOAD_TEXT),
            "stale_members": STALE_MEMBERS,
            "key_prefix": RUN_PREFIX,
        },
        "results": results,
        "stale_after_kill": stale,
        "keys_left_at_end": keys_left,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def parse_members(text: str) -> list[int]:
    """Parse a comma-separated list of positive group sizes."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from error
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("group sizes must be positive integers")
    return sizes


def main() -> None:
    """Parse the command line, run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--members",
        type=parse_members,
        default=[10, 100, 1000],
        help="comma-separated group sizes (default: 10,100,1000)",
    )
    parser.add_argument(
        "--broadcasts",
        type=int,
        default=20,
        help="measured broadcasts per layer and group size (default: 20)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="Redis to measure (default: redis://127.0.0.1:6379/0)",
    )
    args = parser.parse_args()
    if args.broadcasts < 1:
        parser.error("--broadcasts must be at least 1")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    report = asyncio.run(run(args.members, args.broadcasts, args.redis_url))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
