"""The agent's connection to the server: one socket at a time, authenticated by the
host token, following the server's hello and config frames, reconnecting with
backoff, and logging once per change of state rather than once per attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import __version__
from agent.backoff import Backoff
from agent.protocol import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_REPLACED,
    CLOSE_TOO_FAST,
    CLOSE_UNAUTHORIZED,
    CONFIG,
    ERROR,
    HELLO,
    Cadence,
    read_server_frame,
)
from agent.waiting import first_of

logger = logging.getLogger(__name__)

# Seconds the handshake may take, then the server's hello after it.
OPEN_TIMEOUT = 15.0
HELLO_TIMEOUT = 15.0
# A WebSocket ping every 10 s, unanswered for 10 s: the connection is dead. This
# bounds how long snapshots can go into a connection that silently died.
PING_INTERVAL = 10.0
PING_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
# The server sends only small frames (hello, config, error).
MAX_SERVER_FRAME_BYTES = 64 * 1024
USER_AGENT = f"monitor-agent/{__version__} websockets/{websockets.__version__}"
# A connection that stayed up this long was not a flap: the next attempt starts the
# backoff again from its first delay.
STEADY_AFTER = 10.0
# Close codes the agent sends: 1001 when it stops, 1002 when the server broke the
# protocol (no hello).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002

# Why a connection could not be made (InvalidStatus, a WebSocketException, is the
# server's HTTP answer).
CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)


class Replaced(Exception):
    """The server closed the socket with 4010: another agent now holds the token."""


class Transport:
    """Keeps one connection to the agent socket open while running, and sends
    frames on it once the server's hello has arrived."""

    def __init__(
        self,
        url: str,
        token: str,
        cadence: Cadence,
        on_cadence: Callable[[Cadence], None] | None = None,
        backoff: Backoff | None = None,
        hello_timeout: float = HELLO_TIMEOUT,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"}
        # The latest cadence from the server; fields a frame leaves out keep theirs.
        self.cadence = cadence
        self.on_cadence = on_cadence
        self.backoff = backoff or Backoff()
        self.hello_timeout = hello_timeout
        self.host: str | None = None
        self._socket: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()
        # The failure last logged, so that attempts failing alike log nothing more,
        # and whether a connection got as far as hello since then.
        self._failure: str | None = None
        self._said_hello = False
        # When the current connection's hello came (monotonic), if it did.
        self._hello_at: float | None = None
        self._errors_seen: set[str] = set()

    @property
    def ready(self) -> bool:
        """Whether frames can be sent: connected, and the server said hello."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Return once the server has said hello on a connection."""
        await self._ready.wait()

    async def wait_lost(self) -> None:
        """Return once no connection is ready."""
        await self._lost.wait()

    async def send(self, text: str) -> bool:
        """Send a frame; return False (having sent nothing) when not ready."""
        connection = self._socket
        if connection is None or not self.ready:
            return False
        try:
            await connection.send(text)
        except ConnectionClosed:
            # The frame did not go; the receiving side will say why the socket ended.
            self._set_lost(connection)
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set; raise Replaced on 4010."""
        logger.info("Connecting to %s", self.url)
        while not stop.is_set():
            why = await self._connect_once(stop)
            if why is None:
                return
            self._note_failure(why)
            if self._hello_at is not None:
                if time.monotonic() - self._hello_at >= STEADY_AFTER:
                    self.backoff.reset()
                self._hello_at = None
            delay = self.backoff.next_delay()
            logger.debug("Next attempt in %.2f s", delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()

    async def _connect_once(self, stop: asyncio.Event) -> str | None:
        """Connect and converse; return why the connection ended, None if stopped."""
        # A handshake can hang for OPEN_TIMEOUT (a server that drops packets): stop
        # must not wait for it.
        opening = asyncio.ensure_future(self._open())
        await first_of(opening, stop.wait())
        if not opening.done() or opening.cancelled():
            with contextlib.suppress(asyncio.CancelledError, *CONNECT_ERRORS):
                await opening
            return None
        try:
            connection = opening.result()
        except InvalidStatus as error:
            status = error.response.status_code
            return f"the server refused the handshake with HTTP {status}"
        except CONNECT_ERRORS as error:
            return describe_error(error)
        try:
            return await self._converse(connection, stop)
        finally:
            await connection.close()

    async def _open(self) -> ClientConnection:
        return await connect(
            self.url,
            additional_headers=self._headers,
            user_agent_header=USER_AGENT,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_SERVER_FRAME_BYTES,
        )

    async def _converse(
        self, connection: ClientConnection, stop: asyncio.Event
    ) -> str | None:
        self._socket = connection
        self._errors_seen.clear()
        receiving = asyncio.ensure_future(self._receive(connection))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            self._set_lost(connection)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
        if stopping.done() and not stopping.cancelled():
            await connection.close(CLOSE_GOING_AWAY, "agent stopping")
            return None
        return receiving.result()

    async def _receive(self, connection: ClientConnection) -> str:
        """Read the server's frames; return why the connection ended."""
        try:
            try:
                async with asyncio.timeout(self.hello_timeout):
                    while not self.ready:
                        self._handle(await connection.recv())
            except TimeoutError:
                await connection.close(CLOSE_PROTOCOL_ERROR, "no hello")
                return f"no hello from the server within {self.hello_timeout:g} s"
            while True:
                self._handle(await connection.recv())
        except ConnectionClosed as closed:
            return why_closed(closed)

    def _handle(self, text: str | bytes) -> None:
        try:
            frame = read_server_frame(text, self.cadence)
        except ValueError as error:
            logger.warning("Ignored a frame from the server: %s", error)
            return
        for problem in frame.problems:
            logger.warning(
                "Ignored a field of the server's %s: %s", frame.type, problem
            )
        if frame.type in (HELLO, CONFIG) and frame.cadence is not None:
            self._follow(frame.cadence)
        if frame.type == HELLO and not self.ready:
            self.host = frame.host
            self._hello_at = time.monotonic()
            self._failure = None
            self._said_hello = True
            logger.info("Connected to %s as host %s", self.url, frame.host)
            self._lost.clear()
            self._ready.set()
        elif frame.type == ERROR:
            # Once per message and connection: a bad snapshot would repeat each tick.
            level = (
                logging.DEBUG if frame.message in self._errors_seen else logging.WARNING
            )
            self._errors_seen.add(frame.message or "")
            logger.log(level, "The server answered an error: %s", frame.message)
        elif frame.type not in (HELLO, CONFIG):
            logger.debug("Ignored a %r frame from the server", frame.type)

    def _follow(self, cadence: Cadence) -> None:
        self.cadence = cadence
        if self.on_cadence is not None:
            self.on_cadence(cadence)

    def _set_lost(self, connection: ClientConnection) -> None:
        if self._socket is connection:
            self._socket = None
            self._ready.clear()
            self._lost.set()

    def _note_failure(self, why: str) -> None:
        """Log a change of state: disconnected, or failing in a new way."""
        if self._said_hello:
            self._said_hello = False
            logger.warning(
                "Disconnected: %s; buffering snapshots and reconnecting", why
            )
        elif why != self._failure:
            logger.warning(
                "Cannot connect: %s; retrying with backoff (at most %g s apart)",
                why,
                self.backoff.ceiling,
            )
        else:
            logger.debug("Still cannot connect: %s", why)
        self._failure = why


def why_closed(closed: ConnectionClosed) -> str:
    """Say why the server ended a connection; raise Replaced for 4010."""
    received = closed.rcvd
    if received is None:
        if closed.sent is not None and closed.sent.code == 1011:
            return "the server stopped answering pings"
        return "the connection was lost"
    code, reason = received.code, received.reason or "no reason given"
    if code == CLOSE_REPLACED:
        raise Replaced(reason)
    if code == CLOSE_UNAUTHORIZED:
        return f"the server refused the token ({code} {reason})"
    if code == CLOSE_TOO_FAST:
        return f"the server closed the socket for sending too fast ({code} {reason})"
    if code == CLOSE_MESSAGE_TOO_BIG:
        return f"the server closed the socket for a frame too big ({code} {reason})"
    return f"the server closed the socket ({code} {reason})"


def describe_error(error: BaseException) -> str:
    """Say in a few words why a connection could not be made."""
    if isinstance(error, TimeoutError):
        return f"no answer within {OPEN_TIMEOUT:g} s"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the server's name ({error.strerror})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate was not accepted ({error.verify_message})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"{type(error).__name__}: {error}"
