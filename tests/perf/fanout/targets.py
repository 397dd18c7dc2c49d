"""The servers under test, started, watched and stopped by the tool.

"bare" is tests/perf/bare_server.py; "service" is `manage.py runservice` on a fresh
database with a Redis prefix of its own; "deflate" is "service" again, on a database
of its own, with clients that offer permessage-deflate. Each runs in a process group
of its own (Ctrl-C reaches the tool, which stops it) with its output in the run's
directory.
"""

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from runner.processes import stop_process
from tests.perf.fanout import FanoutError
from tests.perf.fanout.broadcasts import Broadcast, extract_key
from tests.perf.fanout.resources import cpu_seconds
from tests.support.children import ROOT, free_port
from tests.support.redis_keys import delete_prefixed

logger = logging.getLogger(__name__)

BARE_SERVER = ROOT / "tests" / "perf" / "bare_server.py"
# runservice listens with this backlog too: both meet a connect storm alike.
BARE_BACKLOG = 1024
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
# How the service's processes are told apart in its process tree.
WEB_COMMAND = "runner.webserver"
PUBLISHER_COMMAND = "publish_metrics"

HISTORY_POLL = 0.2
READY_TIMEOUT = 120.0
IDLE_TIMEOUT = 30.0
# A web process is idle (done importing) when it uses less than this much CPU time
# per IDLE_SAMPLE seconds, twice in a row.
IDLE_CPU = 0.02
IDLE_SAMPLE = 0.25
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SEED_TIMEOUT = 300.0
# The local publisher's host name (the server's METRICS_HOST_NAME), so that the
# tool knows which host's history the single-host target's broadcasts are in.
LOCAL_HOST = "fanout-local"
# The longest the settings allow: no token may expire mid-run (4001 would close it).
TOKEN_LIFETIME = 86400
# The web workers' own figure of a snapshot's delivery (core.instruments): from its
# publication to the end of its write to the last socket, in /metrics.
DELIVERY_HISTOGRAM = "monitor_snapshot_delivery_seconds"


def last_line(path: Path) -> str:
    """Return the last non-empty line of a log file, or "" if there is none."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def spawn(
    args: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    pipe_stdout: bool = False,
) -> subprocess.Popen:
    """Start a server from the project root, in a process group of its own, its
    output (its stderr only, if its stdout is piped to the tool) to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe_stdout else output,
            stderr=output if pipe_stdout else subprocess.STDOUT,
            process_group=0,
        )


def kill_leftovers(processes: list[psutil.Process]) -> None:
    """SIGKILL any of these processes still running (psutil checks the pid's age)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if process.is_running():
                logger.warning("killing leftover pid %d", process.pid)
                process.kill()


def build_payload() -> str:
    """Return a real snapshot of this host as the publisher serialises it."""
    from agent.collectors import HostCollector
    from agent.snapshots import build_snapshot

    collector = HostCollector()
    time.sleep(0.5)  # so that rates cover a real period, as the publisher's do
    snapshot = build_snapshot(collector.collect(), datetime.now(UTC))
    return json.dumps(snapshot, separators=(",", ":"))


class Target:
    """A server under test: started, described, watched and stopped by the tool."""

    name = ""
    # What the clients offer: "deflate" (permessage-deflate) or None (nothing).
    compression: str | None = None

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.web: list[psutil.Process] = []
        self.publisher: psutil.Process | None = None
        self.broadcasts: list[Broadcast] = []

    @property
    def origin(self) -> str:
        """The Origin header a browser on the service's own site sends."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, clients: int) -> None:
        """Start the server and wait until it serves."""
        raise NotImplementedError

    def client_urls(self, clients: int) -> list[str]:
        """One URL per client."""
        raise NotImplementedError

    async def redis_cpu(self) -> float | None:
        """Redis's CPU seconds so far, if this target uses Redis."""
        return None

    def client_hosts(self, clients: int) -> list[str] | None:
        """The host each client watches, when there are several (--hosts); with
        --fleet, the grant set whose hosts its frames list."""
        return None

    def grant_sets(self) -> dict[str, list[str]] | None:
        """--fleet: per grant set, the hosts its viewers' frames list, in order."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts about the target for the report."""
        return {}

    async def stop(self) -> None:
        """Stop everything this target started."""
        raise NotImplementedError


class BareTarget(Target):
    """tests/perf/bare_server.py in its own process."""

    name = "bare"

    def __init__(self, workdir: Path, payload: str, interval: float) -> None:
        super().__init__(workdir)
        self.payload = payload
        self.interval = interval
        self.process: subprocess.Popen | None = None
        self.output: asyncio.StreamReader | None = None
        self.pipe: asyncio.ReadTransport | None = None
        self.reader: asyncio.Task | None = None
        self.log = workdir / "bare_server.log"

    async def start(self, clients: int) -> None:
        payload_file = self.workdir / "payload.json"
        payload_file.write_text(self.payload)
        args = [sys.executable, str(BARE_SERVER), "--payload-file", str(payload_file)]
        args += ["--interval", str(self.interval), "--backlog", str(BARE_BACKLOG)]
        self.process = await asyncio.to_thread(spawn, args, self.log, pipe_stdout=True)
        self.output = asyncio.StreamReader()
        self.pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self.output), self.process.stdout
        )
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = (await self.output.readline()).decode().split()
        except TimeoutError:
            raise FanoutError("the bare server did not start listening") from None
        if len(line) != 2 or line[0] != "listening":
            raise FanoutError(
                f"the bare server did not start: {last_line(self.log) or line}"
            )
        self.port = int(line[1])
        self.web = [psutil.Process(self.process.pid)]
        self.reader = asyncio.create_task(self.read_reports())

    async def read_reports(self) -> None:
        """Collect the server's `published <time> <timestamp>` lines."""
        while line := await self.output.readline():
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "published":
                self.broadcasts.append(Broadcast(parts[2], float(parts[1])))

    def client_urls(self, clients: int) -> list[str]:
        return [f"ws://127.0.0.1:{self.port}/api/ws/metrics"] * clients

    def describe(self) -> dict[str, Any]:
        return {
            "server": "websockets",
            "websockets": importlib.metadata.version("websockets"),
            "listen_backlog": BARE_BACKLOG,
        }

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(stop_process, self.process, STOP_TIMEOUT)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.pipe is not None:
            self.pipe.close()
        elif self.process is not None:
            self.process.stdout.close()


class ServiceTarget(Target):
    """`manage.py runservice` on a fresh database, with a Redis prefix of its own."""

    name = "service"
    database = "db.sqlite3"
    log_name = "runservice.log"

    def __init__(
        self, workdir: Path, workers: int, interval: float, redis_url: str, prefix: str
    ) -> None:
        super().__init__(workdir)
        self.workers = workers
        self.interval = interval
        self.redis_url = redis_url
        self.prefix = prefix
        self.port = free_port()
        self.log = workdir / self.log_name
        self.process: subprocess.Popen | None = None
        self.known: list[psutil.Process] = []
        self.tokens: list[str] = []
        self.redis: Any = None
        self.tracker: asyncio.Task | None = None
        self.payload_bytes: int | None = None
        self.scrape_token = secrets.token_urlsafe(24)
        self.env = self.make_env()

    def make_env(self) -> dict[str, str]:
        """The environment of runservice, and of the tool when it issues tokens."""
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="monitor.settings",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_DEBUG="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=f"sqlite:///{self.workdir / self.database}",
            REDIS_URL=self.redis_url,
            METRICS_REDIS_PREFIX=self.prefix,
            METRICS_HOST_NAME=LOCAL_HOST,
            # Any active user may watch: the benchmark's user has no permissions.
            METRICS_REQUIRED_PERMISSION="",
            # Every client is the one benchmark user, from one address: no caps.
            METRICS_WS_MAX_SOCKETS_PER_USER="0",
            METRICS_MAX_PENDING_PER_IP="0",
            JWT_ACCESS_TOKEN_LIFETIME=str(TOKEN_LIFETIME),
            PYTHONUNBUFFERED="1",
            # So that the tool can read the workers' delivery figures.
            METRICS_PROMETHEUS_TOKEN=self.scrape_token,
        )
        # Our tokens are signed with the secret key above.
        env.pop("JWT_SIGNING_KEY", None)
        return env

    async def start(self, clients: int) -> None:
        args = [sys.executable, "manage.py", "runservice", "--workers"]
        args += [str(self.workers), "--port", str(self.port)]
        args += ["--interval", str(self.interval)]
        from redis import asyncio as aioredis

        from core.redis import make_async_pool

        # Made first: stop() deletes the run's keys with it, however far start got.
        pool = make_async_pool(self.redis_url, {"socket_timeout": 10})
        self.redis = aioredis.Redis.from_pool(pool)
        self.process = await asyncio.to_thread(spawn, args, self.log, self.env)
        await self.wait_ready()
        await self.wait_idle()
        await self.prepare(clients)

    async def prepare(self, clients: int) -> None:
        """Issue the clients' tokens and follow what is published."""
        self.tokens, _ = await asyncio.to_thread(seed_database, self.env, clients)
        self.tracker = asyncio.create_task(self.track_history())

    def discover(self) -> None:
        """Find runservice's daphne workers and publisher."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        web, publishers = [], []
        for child in children:
            try:
                command = " ".join(child.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if WEB_COMMAND in command:
                web.append(child)
            elif PUBLISHER_COMMAND in command:
                publishers.append(child)
        self.web = web
        self.publisher = publishers[0] if publishers else None
        self.known = list({p.pid: p for p in [*self.known, *children]}.values())

    def ready(self) -> bool:
        """Whether GET /readyz answers 200."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    async def wait_ready(self) -> None:
        """Wait for every worker and the publisher, and for /readyz to answer 200."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise FanoutError(
                    f"runservice exited with status {self.process.returncode}: "
                    f"{last_line(self.log)} (log: {self.log})"
                )
            self.discover()
            if (
                len(self.web) == self.workers
                and self.publisher is not None
                and await asyncio.to_thread(self.ready)
            ):
                return
            if time.monotonic() > deadline:
                raise FanoutError(
                    f"the service was not ready within {READY_TIMEOUT:g} s: "
                    f"{last_line(self.log)} (log: {self.log})"
                )
            await asyncio.sleep(0.2)

    async def wait_idle(self) -> None:
        """Wait until every web process is done starting (uses next to no CPU).

        /readyz answered by one worker says nothing of the others; a worker still
        importing Django would leave the whole connect storm to the first.
        """
        deadline = time.monotonic() + IDLE_TIMEOUT
        quiet = 0
        before = [cpu_seconds([process]) for process in self.web]
        while quiet < 2:
            await asyncio.sleep(IDLE_SAMPLE)
            after = [cpu_seconds([process]) for process in self.web]
            if None in after or None in before:
                raise FanoutError(
                    f"a web worker exited at start: {last_line(self.log)} "
                    f"(log: {self.log})"
                )
            busy = any(b - a > IDLE_CPU for a, b in zip(before, after, strict=True))
            quiet = 0 if busy else quiet + 1
            before = after
            if time.monotonic() > deadline:
                logger.warning("%s: web workers still busy; starting anyway", self.name)
                return

    async def track_history(self) -> None:
        """Follow the publisher's history: every broadcast and its publish time.

        The history is the local host's (P:host:NAME:history) on a server that
        keeps hosts, P:history on one that does not: whichever has entries.
        """
        keys = [f"{self.prefix}:host:{LOCAL_HOST}:history", f"{self.prefix}:history"]
        since = "-inf"
        while True:
            try:
                if len(keys) > 1:
                    found_in = [key for key in keys if await self.redis.exists(key)]
                    keys = found_in[:1] or keys
                found = await self.redis.zrangebyscore(
                    keys[0], since, "+inf", withscores=True
                )
            except Exception as error:  # a Redis hiccup; the wait loops time out
                logger.warning("service: reading history failed: %s", error)
                found = []
            for member, score in found:
                self.broadcasts.append(Broadcast(extract_key(member), score))
                since = f"({score!r}"
                self.payload_bytes = len(member)
            await asyncio.sleep(HISTORY_POLL)

    def client_urls(self, clients: int) -> list[str]:
        base = f"ws://127.0.0.1:{self.port}/api/ws/metrics?token="
        return [base + token for token in self.tokens[:clients]]

    def delivered(self) -> tuple[float, float] | None:
        """The web workers' snapshot deliveries so far, from /metrics: the seconds
        from publication to the last socket's write, summed, and how many; None
        if /metrics cannot be read."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/metrics",
            headers={"Authorization": f"Bearer {self.scrape_token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError, ValueError):
            return None
        figures = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in (f"{DELIVERY_HISTOGRAM}_sum", f"{DELIVERY_HISTOGRAM}_count"):
                figures[name.rpartition("_")[2]] = float(value)
        if len(figures) != 2:
            return None
        return figures["sum"], figures["count"]

    async def redis_cpu(self) -> float | None:
        try:
            info = await self.redis.info("cpu")
        except Exception:  # only a figure of the report is missing
            return None
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def redis_commands(self) -> int | None:
        """The commands Redis has processed so far (all its clients'), if known."""
        try:
            info = await self.redis.info("stats")
        except Exception:  # only a figure of the report is missing
            return None
        return int(info["total_commands_processed"])

    def describe(self) -> dict[str, Any]:
        return {
            "server": "manage.py runservice (daphne)",
            "port": self.port,
            "web_processes": len(self.web),
            "payload_bytes": self.payload_bytes,
            **{
                package: importlib.metadata.version(package)
                for package in ("daphne", "channels", "channels-redis", "twisted")
            },
        }

    async def stop(self) -> None:
        if self.tracker is not None:
            self.tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.tracker
        if self.process is not None:
            self.discover()
            # SIGTERM: the supervisor stops its children, then itself.
            await asyncio.to_thread(stop_process, self.process, STOP_TIMEOUT)
            kill_leftovers(self.known)
        if self.redis is not None:
            try:
                deleted = await delete_prefixed(self.redis, f"{self.prefix}:")
                logger.info("%s: deleted %d Redis keys of the run", self.name, deleted)
            finally:
                await self.redis.aclose()


class DeflateTarget(ServiceTarget):
    """The service again, its clients offering permessage-deflate (as browsers do)."""

    name = "deflate"
    database = "deflate.sqlite3"
    log_name = "runservice-deflate.log"
    compression = "deflate"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "client_compression": "permessage-deflate"}


def seed_database(
    env: dict[str, str],
    viewers: int,
    hosts: list[str] | None = None,
    grant_sets: list[list[str]] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Create the viewers' users (one per grant set, each granted its hosts, or the
    benchmark user) and `hosts` in the service's database; return one access token
    per viewer and each host's agent token.

    Runs Django in a child process (tests/perf/fanout/seed.py) with the service's
    own environment, so the tokens are signed with its key and name a user and
    hosts its workers will find, whatever target came before in this run.
    """
    request = json.dumps(
        {"viewers": viewers, "hosts": hosts or [], "grant_sets": grant_sets or []}
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.perf.fanout.seed"],
        cwd=ROOT,
        env=env,
        input=request,
        capture_output=True,
        text=True,
        timeout=SEED_TIMEOUT,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise FanoutError(
            f"could not create the run's user and hosts: {lines[-1] if lines else ''}"
        )
    seeded = json.loads(result.stdout.strip().splitlines()[-1])
    return seeded["tokens"], seeded["hosts"]


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at `url`."""
    import redis

    from core.redis import make_sync_client

    client = make_sync_client(url, {"socket_connect_timeout": 2, "socket_timeout": 2})
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


async def choose_redis(
    given: str | None, workdir: Path, own: bool = False
) -> tuple[str, str, Any]:
    """Return the service's Redis URL, where it comes from, and the embedded server
    started for it (to be stopped) if any: --redis-url, else 127.0.0.1:6379 if it
    answers (unless `own`: a Redis whose command count is the run's alone), else a
    redis-server of our own on a unix socket in `workdir`."""
    if given is not None:
        if not await asyncio.to_thread(redis_answers, given):
            raise FanoutError(f"no Redis answers at --redis-url {given}")
        return given, "--redis-url", None
    if not own and await asyncio.to_thread(redis_answers, LOCAL_REDIS):
        return LOCAL_REDIS, "local", None
    from runner.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(workdir / "redis")
    try:
        url = await asyncio.to_thread(embedded.start)
    except (OSError, RuntimeError, TimeoutError) as error:
        raise FanoutError(f"could not start an embedded Redis: {error}") from None
    return url, "embedded (started by the tool)", embedded
