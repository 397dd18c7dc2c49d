"""The client processes: each holds a share of the sockets and answers the tool.

They run in processes of their own (spawned), so that reading thousands of sockets
is not the tool's work; the tool talks to them over a pipe.
"""

import abc
import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.perf.fanout import FanoutError
from tests.perf.fanout.broadcasts import (
    extract_host,
    extract_key,
    host_key,
    read_fleet_frame,
)
from tests.perf.fanout.resources import cpu_seconds

# Snapshots are ~2 KB; this only keeps the client from ever refusing one.
CLIENT_MAX_MESSAGE_BYTES = 16 * 2**20
# A socket the server closes within this long of its handshake failed to connect
# (closed_<code>); one closed later was disconnected during the run.
SETTLE = 1.0
CLOSE_TIMEOUT = 20.0
# --fleet mode: distinct frame texts remembered per grant set (a few intervals').
VERDICTS_KEPT = 16
START_TIMEOUT = 60.0


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
    # Every byte read from the TCP socket: the frames as sent, compressed or not
    # (TCP and IP headers are the kernel's, not counted).
    received_bytes = 0

    def data_received(self, data: bytes) -> None:
        self.arrived_at = time.time()
        self.received_bytes += len(data)
        super().data_received(data)


class Served(abc.ABC):
    """A child process of the tool that answers its requests over a pipe: `handle`
    does one, `close_all` closes everything when the tool goes away."""

    link: Connection

    async def serve(self) -> None:
        """Answer the tool's requests until told to close (closing everything) or
        the tool goes away."""
        while True:
            try:
                command, payload = await receive_on(self.link, None)
            except (EOFError, OSError):
                await self.close_all()
                return
            try:
                reply = None
                if command == "close":
                    await self.close_all()
                else:
                    reply = await self.handle(command, payload)
            except Exception as error:  # reported to the tool, which stops the run
                self.link.send(("error", f"{type(error).__name__}: {error}"))
                continue
            self.link.send(("ok", reply))
            if command == "close":
                return

    @abc.abstractmethod
    async def handle(self, command: str, payload: Any) -> Any:
        """Do one request of the tool (any but "close"); return the reply."""

    @abc.abstractmethod
    async def close_all(self) -> None:
        """Close everything this process opened."""


class ClientShare(Served):
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
        # Timestamp text (in --hosts mode "host|timestamp") -> open sockets that
        # have received it.
        self.counts: dict[str, int] = {}
        self.open = 0
        # --hosts mode: per socket, the host it watches (None: one host only), how
        # many snapshots of other hosts and how many out of order it received.
        # --fleet mode: per socket, its grant set instead of a host; "foreign"
        # counts frames that did not list exactly the set's hosts.
        self.hosts: list[str | None] = []
        self.foreign: list[int] = []
        self.disorder: list[int] = []
        # --fleet mode: per grant set, the hosts its frames list, and the size of
        # the latest frame one of its viewers received.
        self.sets: dict[str, list[str]] = {}
        self.frame_bytes: dict[str, int] = {}
        # --fleet mode: per grant set, what read() made of each distinct frame text.
        self.fleet_verdicts: dict[str, dict[bytes, tuple | None]] = {}
        self.open_by_host: Counter[str] = Counter()
        self.listeners: set[asyncio.Task] = set()
        # What the sockets offer: "deflate" (permessage-deflate) or None.
        self.compression: str | None = None

    async def handle(self, command: str, payload: Any) -> Any:
        """Do one request of the tool."""
        if command == "ping":
            return os.getpid()
        if command == "connect":
            return await self.connect_all(**payload)
        if command == "settle":
            return await self.settle()
        if command == "status":
            return {
                "open": self.open,
                "counts": dict(self.counts),
                "open_by_host": dict(self.open_by_host),
            }
        if command == "bytes":
            return sum(ws.received_bytes for ws in self.sockets if ws is not None)
        if command == "collect":
            return self.collect(payload)
        if command == "collect_hosts":
            return self.collect_hosts(payload)
        if command == "collect_fleet":
            return {
                "sockets": self.collect_hosts(dict.fromkeys(self.sets, payload)),
                "frame_bytes": self.frame_bytes,
            }
        if command == "thin":
            return await self.thin(payload)
        raise ValueError(f"unknown command {command!r}")

    async def connect_all(
        self,
        urls: list[str],
        origin: str,
        open_timeout: float,
        hosts: list[str] | None = None,
        sets: dict[str, list[str]] | None = None,
        compression: str | None = None,
    ) -> dict[str, Any]:
        """Open every socket at once; return when it began, how long it took and
        this process's CPU time meanwhile. `hosts`: the host each socket watches
        (--hosts mode), whose snapshots only it must get; with `sets` (--fleet
        mode), the grant set each socket's fleet frames must list the hosts of;
        `compression`: what each socket offers ("deflate" or None)."""
        count = len(urls)
        self.compression = compression
        self.hosts = list(hosts) if hosts is not None else [None] * count
        self.sets = sets or {}
        self.foreign = [0] * count
        self.disorder = [0] * count
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
                compression=self.compression,
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
        host = self.hosts[index]
        if host is not None:
            self.open_by_host[host] += 1
        if host is None:
            job = self.listen(index, websocket)
        else:
            read = self.fleet_reader(host) if self.sets else self.snapshot_reader(host)
            job = self.listen_keyed(index, websocket, host, read)
        task = asyncio.create_task(job)
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
        self.closed(index, code)

    async def listen_keyed(
        self,
        index: int,
        websocket: TimedClientConnection,
        label: str,
        read: Callable[[bytes], tuple[str, str, bool] | None],
    ) -> None:
        """listen() for a viewer of one of several hosts (`label`: the host) or of
        the fleet stream (`label`: its grant set). `read` gives a message's key, its
        timestamp and whether it is wrong for this viewer (another host's snapshot;
        a fleet frame without exactly the set's hosts), or None to pass it over.
        Wrong ones, and those older than one already received, are counted."""
        received = self.received[index]
        counts = self.counts
        latest = ""
        code: int | str
        try:
            while True:
                message = await websocket.recv(decode=False)
                now = websocket.arrived_at
                found = read(message)
                if found is None:
                    continue
                key, stamp, wrong = found
                entry = received.get(key)
                if entry is not None:
                    entry[0] += 1
                    continue
                received[key] = [1, now]
                counts[key] = counts.get(key, 0) + 1
                if wrong:
                    self.foreign[index] += 1
                elif stamp < latest:
                    self.disorder[index] += 1
                else:
                    latest = stamp
        except ConnectionClosed as error:
            code = error.rcvd.code if error.rcvd is not None else 1006
        except Exception as error:  # the socket is lost to us all the same
            code = f"client_{type(error).__name__}"
        self.open_by_host[label] -= 1
        self.closed(index, code)

    def snapshot_reader(self, host: str) -> Callable[[bytes], Any]:
        """listen_keyed()'s `read` for a viewer of `host`: snapshots are known by
        host and timestamp; other frames (online, offline, ...) are passed over."""

        def read(message: bytes) -> tuple[str, str, bool] | None:
            stamp = extract_key(message)
            if not stamp:
                return None
            sender = extract_host(message)
            return host_key(sender, stamp), stamp, sender != host

        return read

    def fleet_reader(self, label: str) -> Callable[[bytes], Any]:
        """listen_keyed()'s `read` for a fleet viewer of grant set `label`: frames
        are known by their timestamp; the latest one's size is noted.

        A frame is parsed once per set and text: the server frames each set once,
        so its viewers get the same bytes, and parsing each copy (a quarter of a
        millisecond for 100 hosts) would hold up the reading of the sockets after
        it, which the latencies would count.
        """
        expected = self.sets[label]
        verdicts = self.fleet_verdicts.setdefault(label, {})

        def read(message: bytes) -> tuple[str, str, bool] | None:
            if message in verdicts:
                return verdicts[message]
            if len(verdicts) >= VERDICTS_KEPT:
                verdicts.clear()
            frame = read_fleet_frame(message)
            if frame is None:
                verdicts[message] = None
                return None
            stamp, hosts = frame
            self.frame_bytes[label] = len(message)
            verdicts[message] = stamp, stamp, hosts != expected
            return verdicts[message]

        return read

    def closed(self, index: int, code: int | str) -> None:
        """Note a socket's end; what it received no longer counts as delivered."""
        self.closed_at[index] = time.time()
        self.close_code[index] = code
        self.open -= 1
        for key in self.received[index]:
            self.counts[key] -= 1

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

    def collect_hosts(self, keys: dict[str, list[str]]) -> list[tuple]:
        """Per connected socket: its host, its close code if closed, per key of its
        host's (copies, first receive time), and its foreign and out-of-order
        counts. `keys`: per host, the "host|timestamp" keys of its window."""
        results = []
        for index, connected in enumerate(self.connected):
            if not connected:
                continue
            host = self.hosts[index]
            received = self.received[index]
            code = self.close_code[index] if self.closed_at[index] is not None else None
            entries = [tuple(received.get(key) or (0, None)) for key in keys[host]]
            results.append(
                (host, code, entries, self.foreign[index], self.disorder[index])
            )
        return results

    async def thin(self, keep: dict[str, int] | None) -> dict[str, int]:
        """Close open sockets beyond `keep[host]` of each host (none kept of a host
        not in it; None: half of each host's, rounded up); return how many stay
        open per host."""
        by_host: dict[str | None, list[int]] = {}
        for index, websocket in enumerate(self.sockets):
            if websocket is not None and self.closed_at[index] is None:
                by_host.setdefault(self.hosts[index], []).append(index)
        kept: dict[str, int] = {}
        closing = []
        for host, indices in by_host.items():
            limit = math.ceil(len(indices) / 2) if keep is None else keep.get(host, 0)
            kept[host] = min(limit, len(indices))
            closing += [self.sockets[index].close() for index in indices[limit:]]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT / 2):
                await asyncio.gather(*closing, return_exceptions=True)
        return kept

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
    """The tool's client processes (spawned), each with a share of the sockets.

    `entry`: what each process runs with its end of the pipe (the simulated agents
    of --hosts mode are such a process too).
    """

    def __init__(self, count: int, entry=run_client_process) -> None:
        context = multiprocessing.get_context("spawn")
        self.links: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=entry, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.links.append(ours)
            self.processes.append(process)
        self.ps = [psutil.Process(process.pid) for process in self.processes]

    async def ping(self) -> None:
        """Wait until every client process has started and answers."""
        await self.request_all("ping", [None] * len(self.links), START_TIMEOUT)

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

    async def received_bytes(self) -> int:
        """Return the bytes every socket has read from TCP so far, in all."""
        answers = await self.request_all("bytes", [None] * len(self.links), 30)
        return sum(answers)

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
