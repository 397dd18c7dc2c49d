"""A stand-in for the server's agent socket, /api/ws/agent, to test agents against.

The real ingest endpoint (the server side of issue 13) does not exist yet. This stub
speaks docs/agent-protocol.md from the server's side with `websockets`: it checks the
bearer token, says hello, sends config frames when a test asks, validates and records
every frame, answers bad ones with an `error` frame, enforces the frame size and rate
limits (4009, 4008), replaces an older connection of the same token (4010), and can
refuse tokens (4001), drop every connection or stop listening. Tests that use it
test the agent, not the server: once the real endpoint exists, e2e tests against the
real server replace them.

It imports neither Django nor the agent (its numbers are written out from the
document, so that it checks the agent instead of agreeing with it), so the load tool
can use it as well; its token buckets are the server's own (metrics/ratelimit.py,
plain arithmetic).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from metrics.ratelimit import TokenBucket
from tests.support.children import free_port

PATH = "/api/ws/agent"
MAX_FRAME_BYTES = 256 * 1024
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECTIONS = {"cpu", "memory", "network", "disk"}
# Token buckets: live snapshots 3 per interval (bursts of 6), backfill 50 a second
# (bursts of 100).
LIVE_PER_INTERVAL, LIVE_BURST = 3, 6
BACKFILL_PER_SECOND, BACKFILL_BURST = 50, 100


@dataclass
class AgentConnection:
    """One connection an agent made, as the stub saw it."""

    number: int
    path: str
    headers: Headers
    opened_at: float
    host: str | None = None
    interval: float | None = None
    # The close code the stub sent, and the one the agent sent (None: none).
    closed_by_stub: int | None = None
    closed_by_agent: int | None = None
    socket: ServerConnection | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Received:
    """A valid metrics frame, the connection it came on, and when (monotonic)."""

    connection: int
    host: str
    at: float
    frame: dict[str, Any]

    @property
    def backfill(self) -> bool:
        return self.frame.get("backfill") is True

    @property
    def timestamp(self) -> str:
        return self.frame["timestamp"]


class AgentStub:
    """The agent socket of a server that does not exist yet (see the module)."""

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        *,
        interval: float = 5.0,
        live: bool = True,
        idle_interval: float = 60.0,
        port: int | None = None,
    ) -> None:
        self.tokens = dict(tokens or {})
        self.interval = interval
        self.live = live
        self.idle_interval = idle_interval
        self.port = port or free_port()
        # Set to (code, reason): every connection is closed so right after its hello.
        self.close_after_hello: tuple[int, str] | None = None
        self.connections: list[AgentConnection] = []
        self.received: list[Received] = []
        # Frames answered with an error, with the message sent.
        self.rejected: list[tuple[str, str]] = []
        self._current: dict[str, AgentConnection] = {}
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """The service's address as a user gives it to an agent."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again) on the stub's port."""
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            self.port,
            process_request=self._check_path,
            # Bigger than the limit, so that the stub can answer 4009 itself.
            max_size=4 * MAX_FRAME_BYTES,
        )

    async def stop(self) -> None:
        """Stop listening and drop every connection without a close frame, as a
        server that died would."""
        self.drop_all()
        if self._server is not None:
            self._server.close(close_connections=False)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AgentStub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def drop_all(self) -> None:
        """Cut every open connection at the TCP level (the agent sees 1006)."""
        for connection in self.open_connections():
            connection.socket.transport.abort()

    async def close_all(self, code: int, reason: str) -> None:
        """Close every open connection with a close code and reason."""
        for connection in self.open_connections():
            connection.closed_by_stub = code
            await connection.socket.close(code, reason)

    async def configure(self, **changes: Any) -> None:
        """Change interval, live or idle_interval, and send a config frame to every
        connected agent (hellos after this carry the new values too)."""
        for name, value in changes.items():
            if name not in ("interval", "live", "idle_interval"):
                raise TypeError(f"unknown setting {name!r}")
            setattr(self, name, value)
        for connection in self.open_connections():
            if "interval" in changes:
                connection.interval = self.interval
            await self._send(
                connection, {"type": "config", **self._cadence(connection)}
            )

    def open_connections(self) -> list[AgentConnection]:
        """The connections of a host that are open now."""
        return [c for c in self._current.values() if c.socket is not None]

    def metrics(self, *, backfill: bool | None = None) -> list[Received]:
        """The valid metrics frames received so far: all, only or no backfill."""
        return [r for r in self.received if backfill is None or r.backfill == backfill]

    # --- the server's side of the protocol ------------------------------------------

    def _check_path(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if urlsplit(request.path).path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such socket\n")
        return None

    async def _serve(self, socket: ServerConnection) -> None:
        request = socket.request
        connection = AgentConnection(
            number=len(self.connections) + 1,
            path=request.path,
            headers=request.headers,
            opened_at=time.monotonic(),
        )
        self.connections.append(connection)
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        host = self.tokens.get(token) if scheme == "Bearer" else None
        if host is None:
            connection.closed_by_stub = 4001
            await socket.close(4001, "invalid host token")
            return
        previous = self._current.get(host)
        if previous is not None and previous.socket is not None:
            previous.closed_by_stub = 4010
            await previous.socket.close(4010, "replaced by a newer connection")
        connection.host, connection.socket = host, socket
        self._current[host] = connection
        try:
            await self._converse(connection, socket)
        finally:
            received = socket.protocol.close_rcvd
            if received is not None:
                connection.closed_by_agent = received.code
            connection.socket = None

    async def _converse(
        self, connection: AgentConnection, socket: ServerConnection
    ) -> None:
        connection.interval = self._interval_asked(connection)
        hello = {"type": "hello", "host": connection.host, **self._cadence(connection)}
        await self._send(connection, hello)
        if self.close_after_hello is not None:
            connection.closed_by_stub = self.close_after_hello[0]
            await socket.close(*self.close_after_hello)
            return
        live = TokenBucket(LIVE_PER_INTERVAL / connection.interval, LIVE_BURST)
        backfill = TokenBucket(BACKFILL_PER_SECOND, BACKFILL_BURST)
        try:
            async for message in socket:
                size = len(message.encode() if isinstance(message, str) else message)
                if size > MAX_FRAME_BYTES:
                    connection.closed_by_stub = 4009
                    await socket.close(4009, "frame too big")
                    return
                frame, problem = read_metrics(message)
                if problem is not None:
                    self.rejected.append((str(message)[:200], problem))
                    await self._send(connection, {"type": "error", "message": problem})
                    continue
                bucket = backfill if frame.get("backfill") else live
                if not bucket.allow():
                    connection.closed_by_stub = 4008
                    await socket.close(4008, "too many snapshots")
                    return
                self.received.append(
                    Received(
                        connection.number, connection.host, time.monotonic(), frame
                    )
                )
        except ConnectionClosed:
            pass

    def _interval_asked(self, connection: AgentConnection) -> float:
        asked = parse_qs(urlsplit(connection.path).query).get("interval")
        if not asked:
            return self.interval
        try:
            value = float(asked[0])
        except ValueError:
            value = math.nan
        if 0.5 <= value <= 3600:
            return value
        return self.interval

    def _cadence(self, connection: AgentConnection) -> dict[str, Any]:
        return {
            "interval": connection.interval or self.interval,
            "live": self.live,
            "idle_interval": self.idle_interval,
        }

    async def _send(self, connection: AgentConnection, frame: dict[str, Any]) -> None:
        if connection.socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await connection.socket.send(json.dumps(frame))


def read_metrics(message: str | bytes) -> tuple[dict[str, Any], str | None]:
    """Check a frame as the server would: a metrics snapshot in the seed's format,
    optionally flagged as backfill; other fields (a `host`, say) are ignored. Return
    it and what is wrong with it, if anything."""
    if isinstance(message, bytes):
        return {}, "binary frames are not supported; send JSON text"
    try:
        frame = json.loads(message)
    except ValueError:
        return {}, "invalid JSON"
    if not isinstance(frame, dict) or frame.get("type") != "metrics":
        return {}, 'expected a "metrics" snapshot'
    if not isinstance(frame.get("timestamp"), str) or not TIMESTAMP.match(
        frame["timestamp"]
    ):
        return {}, "timestamp must be ISO-8601 UTC to the millisecond, ending in Z"
    data = frame.get("data")
    if not isinstance(data, dict) or set(data) != SECTIONS:
        return {}, f"data must hold exactly {sorted(SECTIONS)}"
    if not all(isinstance(data[name], dict) for name in SECTIONS):
        return {}, "each section of data must be an object"
    if "backfill" in frame and not isinstance(frame["backfill"], bool):
        return {}, "backfill must be true or false"
    return frame, None
