"""daphne, with the two WebSocket behaviours the service promises its clients.

Run it exactly like daphne: `python -m runner.webserver [daphne arguments]`.

- A message over daphne's --websocket-max-message-size closes the socket with
  1009 (autobahn's default is to drop the TCP connection without a close frame).
- A client that stops reading cannot make the server buffer without bound: once
  more than METRICS_WS_SEND_BUFFER_BYTES wait to be sent to it, or data has waited
  unacknowledged for METRICS_WS_SLOW_CLIENT_TIMEOUT seconds (checked every 2 s,
  counting the kernel's send queue too), its connection is dropped. Other clients
  are not delayed: daphne never blocks on one socket.
- A snapshot, sent as a SharedText (core.frames) to many sockets at once, is
  framed once: each socket gets the same bytes written, without autobahn's
  per-message work, and straight into the kernel when nothing is queued before
  them (as asyncio's own transports do) instead of on the reactor's next turn.
  daphne's --websocket-max-message-size bounds what clients send; it does not
  stop a snapshot bigger than that from going out.
- autobahn pretty-prints its configuration for a debug log line on every new
  connection, logged or not; here that formatting happens only if the line is.
- A handshake may wait 30 s, not daphne's 5 s, for the application to accept:
  in a storm of thousands of connects the last ones queue for seconds, and a
  5 s limit turns that wait into HTTP 403 for all of them at once. Give
  --websocket_connect_timeout to choose another limit.
"""

import fcntl
import logging
import pprint
import struct
import sys
import termios
import time

from autobahn.websocket import protocol as autobahn_protocol
from daphne import server, ws_protocol
from daphne.cli import CommandLineInterface
from django.conf import settings
from twisted.internet import tcp

from core.frames import SharedText

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30


def kernel_unsent_bytes(transport: object) -> int:
    """Bytes in the socket's kernel send queue that the peer has not acknowledged.

    A client that stops reading closes its receive window, so this stays above zero;
    a reading client acknowledges within a round trip. Linux only (0 elsewhere).
    """
    try:
        handle = transport.getHandle()
        raw = fcntl.ioctl(handle.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return 0
    return struct.unpack("I", raw)[0]


def buffered_bytes(transport: object) -> int:
    """Bytes Twisted holds in our process because the kernel would not take them."""
    queued = len(getattr(transport, "dataBuffer", b""))
    unsent = queued - getattr(transport, "offset", 0)
    return unsent + getattr(transport, "_tempDataLen", 0)


def write_now(transport: object, data: bytes) -> None:
    """Hand the kernel what it takes of `data` now; Twisted queues the rest.

    Only on a plain TCP connection with nothing queued (so order is kept) that is
    not closing; anything else goes through Twisted's write() as usual.
    """
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not buffered_bytes(transport)
    ):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int):
            data = data[sent:]
    if data:
        transport.write(data)


class BoundedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """daphne's protocol, dropping clients too slow to take what is sent."""

    backlogged_since: float | None = None

    def serverSend(self, content, binary=False):
        if self.too_slow():
            return
        if isinstance(content, SharedText) and self.takes_ready_frame(content):
            write_now(self.transport, content.frame)
            return
        super().serverSend(content, binary)

    def takes_ready_frame(self, text: SharedText) -> bool:
        """Whether a plain text frame can be written as is, bypassing autobahn.

        Only between messages on an open socket with nothing queued, and with no
        compression or fragmentation negotiated; else autobahn sends it.
        """
        return (
            self.state == self.STATE_OPEN
            and self.send_state == self.SEND_STATE_GROUND
            and not self.send_queue
            and self._perMessageCompress is None
            and not 0 < self.autoFragmentSize < len(text.frame)
        )

    def check_timeouts(self):
        super().check_timeouts()
        self.too_slow()

    def too_slow(self) -> bool:
        """Drop the connection if its unsent data is too big or too old."""
        # The size bound is on the memory we hold; the timeout also counts what the
        # kernel holds unacknowledged (a reader drains it within a round trip).
        buffered = buffered_bytes(self.transport)
        pending = buffered + kernel_unsent_bytes(self.transport)
        now = time.monotonic()
        if not pending:
            self.backlogged_since = None
            return False
        self.backlogged_since = self.backlogged_since or now
        waited = now - self.backlogged_since
        if (
            buffered <= settings.METRICS_WS_SEND_BUFFER_BYTES
            and waited <= settings.METRICS_WS_SLOW_CLIENT_TIMEOUT
        ):
            return False
        logger.warning(
            "Dropping a client that does not read: %d bytes unsent for %.0f s",
            pending,
            waited,
        )
        self.dropConnection(abort=True)
        return True


class WebSocketFactory(ws_protocol.WebSocketFactory):
    """daphne's factory with a closing handshake (1009) for oversized messages."""

    protocol = BoundedWebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(failByDrop=False)


class LazyFormat:
    """pprint.pformat(value), formatted only when a log line prints it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def main() -> None:
    """Run daphne's command line with our factory."""
    server.WebSocketFactory = WebSocketFactory
    # A sixth of a connection's handshake went into formatting text nobody logged.
    autobahn_protocol.pformat = LazyFormat
    # autobahn's one other use of it must still return text.
    autobahn_protocol.Timings.__str__ = lambda timings: pprint.pformat(timings._timings)
    CommandLineInterface().run(with_handshake_timeout(sys.argv[1:]))


def with_handshake_timeout(args: list[str]) -> list[str]:
    """daphne's arguments, with our handshake timeout unless they give one."""
    if any(arg.startswith("--websocket_connect_timeout") for arg in args):
        return args
    return ["--websocket_connect_timeout", str(HANDSHAKE_TIMEOUT), *args]


if __name__ == "__main__":
    main()
