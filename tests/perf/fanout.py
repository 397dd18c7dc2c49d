"""Load tool: the service's broadcast fan-out, beside a bare websockets server's.

One run measures two targets in turn, with the same number of clients, interval,
payload and procedure:

- "bare": tests/perf/bare_server.py, a pure `websockets` server broadcasting a real
  ~2 KB snapshot of this host every interval (the ceiling);
- "service": the project as production runs it, `manage.py runservice --workers K
  --port P --interval S`, on a fresh SQLite database in a temporary directory, with
  a random Redis key prefix; every client holds its own real JWT access token.

For each: the connect storm (all clients at once: seconds, rate, failures by kind,
handshake times, the kernel's listen-queue overflows), server memory per connection
(RSS growth over the storm, after a few sockets per web process were opened and
closed so one-time set-up is not counted),
then after a warm-up broadcast that every client received, a window of --broadcasts
broadcasts: publish -> first and publish -> last client latency per broadcast,
latency over all deliveries, lost and duplicated messages, disconnections, and CPU
time of the server's web processes (per delivery), of the publisher and Redis, and
of the tool's own client processes (whether they were saturated, which would make
the figures the tool's rather than the server's).

Run from the project root (Redis: --redis-url, else 127.0.0.1:6379 if it answers,
else an embedded redis-server the tool starts):

    .venv/bin/python tests/perf/fanout.py --clients 2000 [--workers 1]
        [--interval 1] [--broadcasts 10] [--client-processes 1]
        [--connect-timeout 30] [--only bare|service] [--redis-url redis://...]

Progress goes to stderr and one JSON line to stdout; a failure is one line on stderr
and a non-zero exit (a target that accepted no client at all is one too, after the
JSON line, which has its connect figures). Every child process is stopped and every
Redis key the run made (all under its random prefix) is deleted before it exits;
nothing else is touched. Latencies are from the message's timestamp to the moment
its bytes reached the client process.
"""

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import math
import multiprocessing
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, only tests/perf is on the path; the project's modules are needed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("fanout")

BARE_SERVER = Path(__file__).resolve().with_name("bare_server.py")
# runservice listens with this backlog too: both meet a connect storm alike.
BARE_BACKLOG = 1024
TARGETS = ("bare", "service")
# Sockets per web process opened and closed before the memory baseline.
WARM_UP_SOCKETS = 8
TIMESTAMP_MARK = b'"timestamp":"'
LOCAL_REDIS = "redis://127.0.0.1:6379/0"

# The limits runservice and publish_metrics put on their flags, repeated so that
# parsing ours needs no Django settings.
MAX_WORKERS = 64
MIN_INTERVAL = 0.5
MAX_INTERVAL = 3600.0
MAX_CLIENTS = 100_000
MAX_BROADCASTS = 10_000
MAX_CLIENT_PROCESSES = 64

# Snapshots are ~2 KB; this only keeps the client from ever refusing one.
CLIENT_MAX_MESSAGE_BYTES = 16 * 2**20
# A socket the server closes within this long of its handshake failed to connect
# (closed_<code>); one closed later was disconnected during the run.
SETTLE = 1.0
POLL = 0.1
HISTORY_POLL = 0.2
READY_TIMEOUT = 120.0
IDLE_TIMEOUT = 30.0
# A web process is idle (done importing) when it uses less than this much CPU time
# per IDLE_SAMPLE seconds, twice in a row.
IDLE_CPU = 0.02
IDLE_SAMPLE = 0.25
STOP_TIMEOUT = 30.0
STEP_TIMEOUT = 30.0
CLOSE_TIMEOUT = 20.0
PROCESS_START_TIMEOUT = 60.0
SATURATED_PERCENT = 90.0
BENCHMARK_USERNAME = "fanout-benchmark"
# The longest the settings allow: no token may expire mid-run (4001 would close it).
TOKEN_LIFETIME = 86400


class FanoutError(Exception):
    """The run cannot go on; the message says why, in one line."""


@dataclass(frozen=True)
class Broadcast:
    """One published snapshot: its timestamp text, as clients see it, and when."""

    key: str
    published_at: float


# --- helpers -------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples`."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def summarise(samples: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """Return p50, p95 and max of `samples` (seconds) in ms, or nulls if none."""
    if not samples:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(percentile(samples, 0.5) * scale, 2),
        "p95": round(percentile(samples, 0.95) * scale, 2),
        "max": round(max(samples) * scale, 2),
    }


def extract_key(message: bytes) -> str:
    """Return the value of a message's "timestamp" found by string search, or ""."""
    start = message.find(TIMESTAMP_MARK)
    if start < 0:
        return ""
    start += len(TIMESTAMP_MARK)
    return message[start : message.find(b'"', start)].decode()


def parse_timestamp(text: str) -> tuple[float, bool]:
    """Return the Unix time of a snapshot timestamp and whether it has milliseconds.

    Accepts "2026-01-19T14:30:05.123Z" and the older "2026-01-19T14:30:05Z".
    """
    if not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    whole, dot, fraction = text[:-1].partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if dot and not (fraction.isdigit() and len(fraction) <= 6):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    seconds = float(f"0.{fraction}") if dot else 0.0
    return moment.timestamp() + seconds, bool(dot)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_line(path: Path) -> str:
    """Return the last non-empty line of a log file, or "" if there is none."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def raise_file_limit() -> int:
    """Raise the soft limit of open files to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def read_tcp_counters() -> dict[str, int]:
    """Return the kernel's listen-queue counters (Linux; empty elsewhere)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            wanted = ("ListenOverflows", "ListenDrops", "SyncookiesSent")
            return {name: int(table[name]) for name in wanted if name in table}
    return {}


def read_sysctl(name: str) -> str | None:
    """Return a kernel setting from /proc/sys, or None."""
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def cpu_seconds(processes: list[psutil.Process]) -> float | None:
    """Return the user + system CPU seconds of the processes, None if one is gone."""
    total = 0.0
    try:
        for process in processes:
            times = process.cpu_times()
            total += times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return total


def rss_bytes(processes: list[psutil.Process]) -> int | None:
    """Return the summed resident memory of the processes, None if one is gone."""
    try:
        return sum(process.memory_info().rss for process in processes)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def count_sockets(process: psutil.Process, port: int) -> int | None:
    """Return the established TCP connections a server process holds on `port`."""
    try:
        connections = process.net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return sum(
        1
        for conn in connections
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
    )


def stop_process(process: subprocess.Popen, within: float) -> None:
    """Stop a child with SIGTERM, then SIGKILL if it does not exit in time."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            logger.warning(
                "pid %d still running after %g s; killing", process.pid, within
            )
            process.kill()
            process.wait(within)


def kill_leftovers(processes: list[psutil.Process]) -> None:
    """SIGKILL any of these processes still running (psutil checks the pid's age)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if process.is_running():
                logger.warning("killing leftover pid %d", process.pid)
                process.kill()


async def finish(cleanup: Awaitable[Any]) -> None:
    """Await a clean-up to its end even if cancelled meanwhile (Ctrl-C, SIGTERM),
    then pass the cancellation on: children must be stopped, keys deleted."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


def build_payload() -> str:
    """Return a real snapshot of this host as the publisher serialises it."""
    from metrics.collectors import HostCollector
    from metrics.snapshots import build_snapshot

    collector = HostCollector()
    time.sleep(0.5)  # so that rates cover a real period, as the publisher's do
    snapshot = build_snapshot(collector.collect(), datetime.now(UTC))
    return json.dumps(snapshot, separators=(",", ":"))


# --- client processes ----------------------------------------------------------------


async def receive_on(link: Connection, within: float | None) -> Any:
    """Await the next object on a pipe without a thread; EOFError if its peer died."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(link.fileno(), wake)
    try:
        async with asyncio.timeout(within):
            await readable
    finally:
        loop.remove_reader(link.fileno())
    return link.recv()


class TimedClientConnection(ClientConnection):
    """A client connection that notes when bytes last reached it, before parsing.

    That is the receive time of the message they complete. The moment recv()
    returns the message would add the client's work on every other socket that
    became readable at the same time. (Snapshots come an interval apart: a socket's
    last bytes are its latest message's unless the client is an interval behind.)
    """

    arrived_at = 0.0

    def data_received(self, data: bytes) -> None:
        self.arrived_at = time.time()
        super().data_received(data)


class ClientShare:
    """A client process's share of the sockets, and its answers to the tool."""

    def __init__(self, link: Connection) -> None:
        self.link = link
        self.sockets: list[TimedClientConnection | None] = []
        self.attempted_at: list[float] = []
        self.opened_at: list[float | None] = []
        self.closed_at: list[float | None] = []
        self.failed_at: list[float | None] = []
        self.close_code: list[int | str | None] = []
        self.kinds: list[str | None] = []
        self.connected: list[bool] = []
        # Per socket: timestamp text -> [copies received, first receive wall time].
        self.received: list[dict[str, list]] = []
        # Timestamp text -> open sockets that have received it.
        self.counts: dict[str, int] = {}
        self.open = 0
        self.listeners: set[asyncio.Task] = set()

    async def serve(self) -> None:
        """Answer the tool's requests until told to close or the tool goes away."""
        while True:
            try:
                command, payload = await receive_on(self.link, None)
            except (EOFError, OSError):
                await self.close_all()
                return
            try:
                reply = await self.handle(command, payload)
            except Exception as error:  # reported to the tool, which stops the run
                self.link.send(("error", f"{type(error).__name__}: {error}"))
                continue
            self.link.send(("ok", reply))
            if command == "close":
                return

    async def handle(self, command: str, payload: Any) -> Any:
        """Do one request of the tool."""
        if command == "ping":
            return os.getpid()
        if command == "connect":
            return await self.connect_all(**payload)
        if command == "settle":
            return await self.settle()
        if command == "status":
            return {"open": self.open, "counts": dict(self.counts)}
        if command == "collect":
            return self.collect(payload)
        if command == "close":
            await self.close_all()
            return None
        raise ValueError(f"unknown command {command!r}")

    async def connect_all(
        self, urls: list[str], origin: str, open_timeout: float
    ) -> dict[str, Any]:
        """Open every socket at once; return when it began, how long it took and
        this process's CPU time meanwhile."""
        count = len(urls)
        self.sockets = [None] * count
        self.attempted_at = [0.0] * count
        self.opened_at = [None] * count
        self.closed_at = [None] * count
        self.failed_at = [None] * count
        self.close_code = [None] * count
        self.received = [{} for _ in range(count)]
        started, cpu = time.time(), time.process_time()
        self.kinds = await asyncio.gather(
            *(
                self.open_socket(index, url, origin, open_timeout)
                for index, url in enumerate(urls)
            )
        )
        return {
            "started": started,
            "seconds": time.time() - started,
            "cpu_s": time.process_time() - cpu,
        }

    async def settle(self) -> dict[str, Any]:
        """After SETTLE seconds, report which sockets connected and which failed."""
        await asyncio.sleep(SETTLE)
        count = len(self.kinds)
        failures: Counter[str] = Counter()
        failed_after = []
        self.connected = []
        for index, kind in enumerate(self.kinds):
            if kind is None and self.closed_soon(index):
                kind = f"closed_{self.close_code[index]}"
                self.failed_at[index] = self.closed_at[index]
            self.connected.append(kind is None)
            if kind is not None:
                failures[kind] += 1
                failed_after.append(self.failed_at[index] - self.attempted_at[index])
        opened = [
            (self.opened_at[index], self.opened_at[index] - self.attempted_at[index])
            for index in range(count)
            if self.connected[index]
        ]
        return {
            "connected": len(opened),
            "failures": dict(failures),
            "last_handshake": max((at for at, _ in opened), default=None),
            "handshake_seconds": [took for _, took in opened],
            "failure_seconds": failed_after,
        }

    def closed_soon(self, index: int) -> bool:
        """Whether the server closed an opened socket within SETTLE of its handshake."""
        closed_at, opened_at = self.closed_at[index], self.opened_at[index]
        return closed_at is not None and closed_at - opened_at <= SETTLE

    async def open_socket(
        self, index: int, url: str, origin: str, open_timeout: float
    ) -> str | None:
        """Open one socket and start reading it; return the failure's kind, if any."""
        self.attempted_at[index] = time.time()
        try:
            websocket = await connect(
                url,
                origin=origin,
                open_timeout=open_timeout,
                ping_interval=None,
                max_size=CLIENT_MAX_MESSAGE_BYTES,
                compression=None,
                close_timeout=5,
                create_connection=TimedClientConnection,
            )
        except TimeoutError:
            kind = "timeout"
        except ConnectionRefusedError:
            kind = "refused"
        except InvalidStatus as error:
            kind = f"http_{error.response.status_code}"
        except Exception as error:  # every other failure is counted, by name
            kind = f"other:{type(error).__name__}"
        else:
            kind = None
        if kind is not None:
            self.failed_at[index] = time.time()
            return kind
        self.opened_at[index] = time.time()
        self.sockets[index] = websocket
        self.open += 1
        task = asyncio.create_task(self.listen(index, websocket))
        self.listeners.add(task)
        task.add_done_callback(self.listeners.discard)
        return None

    async def listen(self, index: int, websocket: TimedClientConnection) -> None:
        """Record each message's timestamp and receive time; kept light on purpose."""
        received = self.received[index]
        counts = self.counts
        code: int | str
        try:
            while True:
                message = await websocket.recv(decode=False)
                now = websocket.arrived_at
                key = extract_key(message)
                entry = received.get(key)
                if entry is None:
                    received[key] = [1, now]
                    counts[key] = counts.get(key, 0) + 1
                else:
                    entry[0] += 1
        except ConnectionClosed as error:
            code = error.rcvd.code if error.rcvd is not None else 1006
        except Exception as error:  # the socket is lost to us all the same
            code = f"client_{type(error).__name__}"
        self.closed_at[index] = time.time()
        self.close_code[index] = code
        self.open -= 1
        for key in received:
            counts[key] -= 1

    def collect(self, keys: list[str]) -> list[tuple[int | None, list]]:
        """Per connected socket: its close code if closed, and per key
        (copies, first receive time)."""
        results = []
        for index, connected in enumerate(self.connected):
            if not connected:
                continue
            received = self.received[index]
            code = self.close_code[index] if self.closed_at[index] is not None else None
            results.append(
                (code, [tuple(received.get(key) or (0, None)) for key in keys])
            )
        return results

    async def close_all(self) -> None:
        """Close every socket, giving up on slow closing handshakes."""
        sockets = [websocket for websocket in self.sockets if websocket is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT / 2):
                await asyncio.gather(
                    *(websocket.close() for websocket in sockets),
                    return_exceptions=True,
                )
        for task in list(self.listeners):
            task.cancel()


def run_client_process(link: Connection) -> None:
    """Entry point of a client process: hold sockets until the tool says close."""
    # Ctrl-C is the tool's to handle; it tells us to close.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(ClientShare(link).serve())


class ClientPool:
    """The tool's client processes (spawned), each with a share of the sockets."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.links: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=run_client_process, args=(theirs,), daemon=True
            )
            process.start()
            theirs.close()
            self.links.append(ours)
            self.processes.append(process)
        self.ps = [psutil.Process(process.pid) for process in self.processes]

    async def request_all(
        self, command: str, payloads: list[Any], within: float
    ) -> list[Any]:
        """Send a request to every client process at once; return their answers."""
        for link, payload in zip(self.links, payloads, strict=True):
            try:
                link.send((command, payload))
            except OSError as error:
                raise FanoutError(f"a client process is gone: {error}") from None
        return await asyncio.gather(
            *(self.answer(index, command, within) for index in range(len(self.links)))
        )

    async def answer(self, index: int, command: str, within: float) -> Any:
        """Return client process `index`'s answer to `command`."""
        try:
            status, value = await receive_on(self.links[index], within)
        except TimeoutError:
            raise FanoutError(
                f"client process {index} did not answer {command!r} in {within:g} s"
            ) from None
        except (EOFError, OSError):
            code = self.processes[index].exitcode
            raise FanoutError(
                f"client process {index} died during {command!r} (exit code {code})"
            ) from None
        if status != "ok":
            raise FanoutError(f"client process {index} failed {command!r}: {value}")
        return value

    async def status(self) -> tuple[int, Counter[str]]:
        """Return how many sockets are open, and per key how many of them have it."""
        answers = await self.request_all("status", [None] * len(self.links), 30)
        counts: Counter[str] = Counter()
        for answer in answers:
            counts.update(answer["counts"])
        return sum(answer["open"] for answer in answers), counts

    def cpu(self) -> list[float | None]:
        """Return each client process's CPU seconds so far."""
        return [cpu_seconds([process]) for process in self.ps]

    async def close(self) -> None:
        """Close every socket and stop the processes (killing any that linger)."""
        alive = [p.is_alive() for p in self.processes]
        if all(alive):
            with contextlib.suppress(FanoutError):
                await self.request_all("close", [None] * len(self.links), CLOSE_TIMEOUT)
        for process in self.processes:
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
        for link in self.links:
            link.close()


# --- targets -------------------------------------------------------------------------


class Target:
    """A server under test: started, described, watched and stopped by the tool."""

    name = ""

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
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task | None = None
        self.log = workdir / "bare_server.log"

    async def start(self, clients: int) -> None:
        payload_file = self.workdir / "payload.json"
        payload_file.write_text(self.payload)
        args = [sys.executable, str(BARE_SERVER), "--payload-file", str(payload_file)]
        args += ["--interval", str(self.interval), "--backlog", str(BARE_BACKLOG)]
        with self.log.open("ab") as log:
            # A process group of its own: Ctrl-C reaches the tool, which stops it.
            self.process = await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                process_group=0,
            )
        try:
            async with asyncio.timeout(PROCESS_START_TIMEOUT):
                line = (await self.process.stdout.readline()).decode().split()
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
        while line := await self.process.stdout.readline():
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "published":
                self.broadcasts.append(Broadcast(parts[2], float(parts[1])))

    def client_urls(self, clients: int) -> list[str]:
        return [f"ws://127.0.0.1:{self.port}/api/ws/metrics"] * clients

    def describe(self) -> dict[str, Any]:
        return {
            "server": "websockets",
            "websockets": websocket_version(),
            "listen_backlog": BARE_BACKLOG,
        }

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


class ServiceTarget(Target):
    """`manage.py runservice` on a fresh database, with a Redis prefix of its own."""

    name = "service"

    def __init__(
        self, workdir: Path, workers: int, interval: float, redis_url: str, prefix: str
    ) -> None:
        super().__init__(workdir)
        self.workers = workers
        self.interval = interval
        self.redis_url = redis_url
        self.prefix = prefix
        self.port = free_port()
        self.log = workdir / "runservice.log"
        self.process: subprocess.Popen | None = None
        self.known: list[psutil.Process] = []
        self.tokens: list[str] = []
        self.redis: Any = None
        self.tracker: asyncio.Task | None = None
        self.payload_bytes: int | None = None
        self.env = self.make_env()

    def make_env(self) -> dict[str, str]:
        """The environment of runservice, and of the tool when it issues tokens."""
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="monitor.settings",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_DEBUG="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=f"sqlite:///{self.workdir / 'db.sqlite3'}",
            REDIS_URL=self.redis_url,
            METRICS_REDIS_PREFIX=self.prefix,
            # Any active user may watch: the benchmark's user has no permissions.
            METRICS_REQUIRED_PERMISSION="",
            JWT_ACCESS_TOKEN_LIFETIME=str(TOKEN_LIFETIME),
            PYTHONUNBUFFERED="1",
        )
        # Our tokens are signed with the secret key above.
        env.pop("JWT_SIGNING_KEY", None)
        return env

    async def start(self, clients: int) -> None:
        args = [sys.executable, "manage.py", "runservice", "--workers"]
        args += [str(self.workers), "--port", str(self.port)]
        args += ["--interval", str(self.interval)]
        from redis import asyncio as aioredis

        # Made first: stop() deletes the run's keys with it, however far start got.
        self.redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=10)
        self.process = await asyncio.to_thread(self.spawn, args)
        await self.wait_ready()
        await self.wait_idle()
        self.tokens = await asyncio.to_thread(issue_tokens, self.env, clients)
        self.tracker = asyncio.create_task(self.track_history())

    def spawn(self, args: list[str]) -> subprocess.Popen:
        """Start runservice, its output to the log, in a process group of its own."""
        with self.log.open("ab") as log:
            return subprocess.Popen(
                args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

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
            if "monitor.webserver" in command:
                web.append(child)
            elif "publish_metrics" in command:
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
                logger.warning("service: web workers still busy; starting anyway")
                return

    async def track_history(self) -> None:
        """Follow the publisher's history: every broadcast and its publish time."""
        key = f"{self.prefix}:history"
        since = "-inf"
        while True:
            try:
                found = await self.redis.zrangebyscore(
                    key, since, "+inf", withscores=True
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

    async def redis_cpu(self) -> float | None:
        try:
            info = await self.redis.info("cpu")
        except Exception:  # only a figure of the report is missing
            return None
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

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
                deleted = await delete_prefixed(self.redis, self.prefix)
                logger.info("service: deleted %d Redis keys of the run", deleted)
            finally:
                await self.redis.aclose()


def issue_tokens(env: dict[str, str], count: int) -> list[str]:
    """Create the benchmark user in the service's database; one access token each.

    Runs Django in this process with the service's own environment, so the tokens
    are signed with its key and name a user its workers will find.
    """
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from rest_framework_simplejwt.tokens import AccessToken

    user = get_user_model().objects.create_user(username=BENCHMARK_USERNAME)
    try:
        return [str(AccessToken.for_user(user)) for _ in range(count)]
    finally:
        connections.close_all()


async def delete_prefixed(client: Any, prefix: str) -> int:
    """Delete every key under `prefix:`; return how many (SCAN, never FLUSH)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])
    return len(keys)


def websocket_version() -> str:
    """The installed websockets version."""
    return importlib.metadata.version("websockets")


# --- measurement ---------------------------------------------------------------------


@dataclass
class CpuSample:
    """CPU seconds of every process the report covers, at one moment."""

    at: float
    web: float | None
    publisher: float | None
    redis: float | None
    clients: list[float | None]


async def sample_cpu(target: Target, pool: ClientPool) -> CpuSample:
    """Read the CPU times of the target's processes and of the client processes."""
    return CpuSample(
        at=time.monotonic(),
        web=cpu_seconds(target.web),
        publisher=cpu_seconds([target.publisher]) if target.publisher else None,
        redis=await target.redis_cpu(),
        clients=pool.cpu(),
    )


def rounded(value: float | None, digits: int) -> float | None:
    """round(), passing None through."""
    return None if value is None else round(value, digits)


def spent(before: float | None, after: float | None) -> float | None:
    """Return after - before, or None if either is unknown."""
    return None if before is None or after is None else after - before


def percent_of_core(seconds: float | None, wall: float) -> float | None:
    """CPU seconds over a wall period as a percentage of one core."""
    return None if seconds is None or wall <= 0 else round(100 * seconds / wall, 1)


async def connect_storm(
    target: Target, pool: ClientPool, clients: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Open every client at once over the client processes; report how it went."""
    urls = target.client_urls(clients)
    processes = len(pool.links)
    payloads = [
        {
            "urls": urls[index::processes],
            "origin": target.origin,
            "open_timeout": args.connect_timeout,
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
        "_last_handshake": max(ends) if ends else None,
    }


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


async def warm_up(target: Target) -> None:
    """Open and close a few sockets on each web process before measuring memory.

    A server's first connections set up things once (imports, thread pools,
    connections to Redis); charging those to every socket would overstate the
    memory a socket costs, most with few sockets per process.
    """
    urls = target.client_urls(WARM_UP_SOCKETS * len(target.web))
    sockets = await asyncio.gather(
        *(connect(url, origin=target.origin, open_timeout=STEP_TIMEOUT) for url in urls)
    )
    await asyncio.sleep(SETTLE)
    await asyncio.gather(*(ws.close() for ws in sockets))


async def measure(
    target: Target, args: argparse.Namespace, grace: float
) -> dict[str, Any]:
    """Run the whole procedure against one target, which must be started."""
    name = target.name
    await warm_up(target)
    rss_before = rss_bytes(target.web)
    pool = ClientPool(args.client_processes)
    try:
        await pool.request_all(
            "ping", [None] * args.client_processes, PROCESS_START_TIMEOUT
        )
        logger.info("%s: connecting %d clients at once", name, args.clients)
        connects = await connect_storm(target, pool, args.clients, args)
        last_handshake = connects.pop("_last_handshake")
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
            "rss": {
                "before_mb": rounded(rss_before and rss_before / 2**20, 1),
                "after_mb": rounded(rss_after and rss_after / 2**20, 1),
                "per_connection_kb": (
                    round((rss_after - rss_before) / connected / 1024, 1)
                    if rss_before and rss_after and connected
                    else None
                ),
                "sockets_per_web_process": [
                    count_sockets(process, target.port) for process in target.web
                ],
            },
        }
        if not connected:
            failures = ", ".join(f"{n} {k}" for k, n in connects["failures"].items())
            report["error"] = f"{name}: no client connected ({failures})"
            return report
        report.update(await measure_window(target, pool, args, grace, last_handshake))
        return report
    finally:
        logger.info("%s: closing the clients", name)
        await finish(pool.close())


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
    before = await sample_cpu(target, pool)
    last = warm + args.broadcasts
    logger.info("%s: measuring %d broadcasts", target.name, args.broadcasts)
    complete = await wait_for_window(target, pool, last, args, grace)
    after = await sample_cpu(target, pool)
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
        "cpu": summarise_cpu(target, before, after, results["deliveries"], window),
    }


def summarise_cpu(
    target: Target,
    before: CpuSample,
    after: CpuSample,
    deliveries: int,
    window: list[Broadcast],
) -> dict[str, Any]:
    """CPU use of the server, publisher, Redis and clients over the window."""
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
            (round(v * 1000 / len(window), 1) for v in clients if v is not None),
            default=None,
        ),
        "client_saturated": any(v >= SATURATED_PERCENT for v in known_percent),
    }
    if web_cpu is None:
        cpu["note"] = "a web process exited during the window"
    if isinstance(target, ServiceTarget):
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


def compare(bare: dict[str, Any] | None, service: dict[str, Any] | None) -> dict:
    """The service's figures as multiples of the bare server's."""
    figures = {
        "last_p95": ("latency_ms", "last", "p95"),
        "last_p50": ("latency_ms", "last", "p50"),
        "first_p95": ("latency_ms", "first", "p95"),
        "connect_rate": ("connect", "per_second"),
        "cpu_per_delivery": ("cpu", "server_ms_per_delivery"),
        "rss_per_connection": ("rss", "per_connection_kb"),
    }

    def pick(report: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
        for step in path:
            if not isinstance(report, dict):
                return None
            report = report.get(step)
        return report

    return {
        name: ratio(pick(service, path), pick(bare, path))
        for name, path in figures.items()
    }


# --- the run -------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


async def choose_redis(given: str | None, workdir: Path) -> tuple[str, str, Any]:
    """Return the service's Redis URL, where it comes from, and the embedded server
    started for it (to be stopped) if any: --redis-url, else 127.0.0.1:6379 if it
    answers, else a redis-server of our own on a unix socket in `workdir`."""
    if given is not None:
        if not await asyncio.to_thread(redis_answers, given):
            raise FanoutError(f"no Redis answers at --redis-url {given}")
        return given, "--redis-url", None
    if await asyncio.to_thread(redis_answers, LOCAL_REDIS):
        return LOCAL_REDIS, "local", None
    from monitor.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(workdir / "redis")
    try:
        url = await asyncio.to_thread(embedded.start)
    except (OSError, RuntimeError, TimeoutError) as error:
        raise FanoutError(f"could not start an embedded Redis: {error}") from None
    return url, "embedded (started by the tool)", embedded


def describe_machine(file_limit: int) -> dict[str, Any]:
    """Return what the numbers depend on: host, Python, kernel limits."""
    return {
        "cpus": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "websockets": websocket_version(),
        "open_files_limit": file_limit,
        "somaxconn": read_sysctl("net.core.somaxconn"),
        "tcp_max_syn_backlog": read_sysctl("net.ipv4.tcp_max_syn_backlog"),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the chosen targets in turn and return the report."""
    file_limit = raise_file_limit()
    started = time.monotonic()
    targets = [args.only] if args.only else list(TARGETS)
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
            "compression": None,
            "targets": targets,
        }
        report: dict[str, Any] = {"machine": describe_machine(file_limit)}
        if "service" in targets:
            redis_url, source, embedded = await choose_redis(args.redis_url, workdir)
            config.update(redis=source, key_prefix=prefix)
        results: dict[str, Any] = {}
        for name in targets:
            if name == "bare":
                target: Target = BareTarget(workdir, payload, args.interval)
            else:
                target = ServiceTarget(
                    workdir, args.workers, args.interval, redis_url, prefix
                )
            results[name] = await run_target(target, args, grace)
        report.update(
            config=config,
            bare=results.get("bare"),
            service=results.get("service"),
            ratios=(
                compare(results["bare"], results["service"])
                if len(results) == 2
                else None
            ),
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


def keep_logs(workdir: Path, failed: bool) -> None:
    """Delete the run's directory, unless it failed and the servers left logs."""
    if failed and any(workdir.glob("*.log")):
        logger.info("logs kept in %s", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


async def run_until_signalled(args: argparse.Namespace) -> dict[str, Any]:
    """run(), cancelled (and so cleaned up) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args)


# --- command line --------------------------------------------------------------------


def bounded_int(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {raw!r}")
        return value

    return parse


def bounded_seconds(low: float, high: float):
    """An argparse type: a finite number of seconds from `low` to `high`."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be {low:g} to {high:g} seconds, got {raw!r}"
            )
        return value

    return parse


def redis_url(raw: str) -> str:
    """An argparse type: a redis://, rediss:// or unix:// URL."""
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(
            f"must be a redis://, rediss:// or unix:// URL, got {raw!r}"
        )
    return raw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line (errors exit 2 with argparse's message)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients",
        type=bounded_int(1, MAX_CLIENTS),
        default=1000,
        help="WebSocket clients per target (default: 1000)",
    )
    parser.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        default=1,
        help="the service's daphne workers (runservice --workers; default: 1)",
    )
    parser.add_argument(
        "--interval",
        type=bounded_seconds(MIN_INTERVAL, MAX_INTERVAL),
        default=1.0,
        help="seconds between broadcasts, both targets (default: 1)",
    )
    parser.add_argument(
        "--broadcasts",
        type=bounded_int(1, MAX_BROADCASTS),
        default=10,
        help="broadcasts measured after the warm-up (default: 10)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=bounded_seconds(0.1, 600),
        default=30.0,
        help="seconds each client may take to connect (default: 30)",
    )
    parser.add_argument(
        "--only", choices=TARGETS, help="measure one target only (no ratios)"
    )
    parser.add_argument(
        "--redis-url",
        type=redis_url,
        help="Redis for the service (default: 127.0.0.1:6379 if it answers, "
        "else an embedded redis-server)",
    )
    parser.add_argument(
        "--client-processes",
        type=bounded_int(1, MAX_CLIENT_PROCESSES),
        default=1,
        help="processes the clients are spread over (default: 1)",
    )
    args = parser.parse_args(argv)
    if args.client_processes > args.clients:
        parser.error("--client-processes must not exceed --clients")
    return args


def main() -> None:
    """Parse the command line, run the tool and print its JSON line."""
    args = parse_args()
    # A handler of our own: django.setup() (for the tokens) reconfigures the root.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        report = asyncio.run(run_until_signalled(args))
    except FanoutError as error:
        sys.stderr.write(f"fanout.py: error: {error}\n")
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("fanout.py: error: interrupted; children stopped\n")
        sys.exit(130)
    except Exception as error:  # one line, no traceback, as for the expected ones
        message = " ".join(str(error).split())
        sys.stderr.write(f"fanout.py: error: {type(error).__name__}: {message}\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(report) + "\n")
    errors = [(report[name] or {}).get("error") for name in TARGETS]
    errors = [error for error in errors if error]
    if errors:
        sys.stderr.write(f"fanout.py: error: {'; '.join(errors)}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
