"""daphne, with the WebSocket behaviours the service promises its clients.

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
- A close's reason (Channels' `close(code, reason)`) reaches the client; daphne
  4.2 drops it.
- autobahn pretty-prints its configuration for a debug log line on every new
  connection, logged or not; here that formatting happens only if the line is.
- A request must arrive within METRICS_HTTP_HEADER_TIMEOUT seconds, however
  slowly its bytes come; one address may hold METRICS_MAX_PENDING_PER_IP
  connections whose request has not arrived; near its descriptor limit the
  server closes new connections at once and keeps serving the ones it has
  (runner.connections).
- A handshake may wait 30 s, not daphne's 5 s, for the application to accept:
  in a storm of thousands of connects the last ones queue for seconds, and a
  5 s limit turns that wait into HTTP 403 for all of them at once. Give
  --websocket_connect_timeout to choose another limit.

The byte bound on a slow client, the framing once and the straight write, and the
lazy formatting use library internals: runner.extensions checks each at start-up
and runs without it (slower) where it does not fit, or when
METRICS_SERVER_EXTENSIONS=0. Without them a slow client is still dropped, by the
timeout alone, and autobahn sends each snapshot, refusing (and logging) any bigger
than --websocket-max-message-size, a limit it applies both ways.
"""

import fcntl
import logging
import struct
import sys
import termios
import time

from daphne import ws_protocol
from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings

from runner import extensions
from runner.connections import GuardedHTTPFactory

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30
MAX_CLOSE_REASON_BYTES = 123


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


class BoundedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """daphne's protocol, dropping clients too slow to take what is sent."""

    backlogged_since: float | None = None

    def serverSend(self, content, binary=False):
        if self.too_slow():
            return
        if extensions.takes_ready_frame(self, content):
            extensions.write_now(self.transport, content.frame)
            return
        super().serverSend(content, binary)

    def check_timeouts(self):
        super().check_timeouts()
        self.too_slow()

    def handle_reply(self, message):
        # daphne 4.2 drops the reason of the application's close; send it too.
        reason = message.get("reason")
        if (
            message.get("type") == "websocket.close"
            and reason
            and self.state != self.STATE_CONNECTING
        ):
            # A close frame has room for 123 bytes of reason.
            reason = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason)
            return
        super().handle_reply(message)

    def too_slow(self) -> bool:
        """Drop the connection if its unsent data is too big or too old."""
        # The size bound is on the memory we hold; the timeout also counts what the
        # kernel holds unacknowledged (a reader drains it within a round trip).
        buffered = extensions.buffered_bytes(self.transport)
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


class WebServer(Server):
    """daphne's server, whose WebSocket factory builds BoundedWebSocketProtocol and
    closes oversized messages with 1009, and whose HTTP factory guards what
    connections it takes (runner.connections); with the extensions that fit on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The command line made us once it loaded the application, and Django with it.
        extensions.enable(settings.METRICS_SERVER_EXTENSIONS)

    @property
    def http_factory(self) -> GuardedHTTPFactory:
        """The factory of HTTP connections (daphne makes its own in run())."""
        return self.guarded_http_factory

    @http_factory.setter
    def http_factory(self, factory: object) -> None:
        # daphne's own factory, with the guards: built here, in its place.
        self.guarded_http_factory = GuardedHTTPFactory(self)

    @property
    def ws_factory(self) -> ws_protocol.WebSocketFactory:
        """The factory of WebSocket protocols (daphne makes it in run())."""
        return self.websocket_factory

    @ws_factory.setter
    def ws_factory(self, factory: ws_protocol.WebSocketFactory) -> None:
        factory.protocol = BoundedWebSocketProtocol
        factory.setProtocolOptions(failByDrop=False)
        self.websocket_factory = factory


class WebServerCommandLine(CommandLineInterface):
    """daphne's command line, serving with WebServer."""

    server_class = WebServer


def main() -> None:
    """Run daphne's command line with our server."""
    WebServerCommandLine().run(with_handshake_timeout(sys.argv[1:]))


def with_handshake_timeout(args: list[str]) -> list[str]:
    """daphne's arguments, with our handshake timeout unless they give one."""
    if any(arg.startswith("--websocket_connect_timeout") for arg in args):
        return args
    return ["--websocket_connect_timeout", str(HANDSHAKE_TIMEOUT), *args]


if __name__ == "__main__":
    main()
