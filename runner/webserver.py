"""daphne, with the WebSocket behaviours the service promises its clients.

Run it exactly like daphne: `python -m runner.webserver [daphne arguments]`.

- A message over daphne's --websocket-max-message-size closes the socket with
  1009 (autobahn's default is to drop the TCP connection without a close frame).
- A client that stops reading cannot make the server buffer without bound: once
  more than METRICS_WS_SEND_BUFFER_BYTES wait to be sent to it, or data has waited
  unacknowledged for METRICS_WS_SLOW_CLIENT_TIMEOUT seconds (checked every 2 s,
  counting the kernel's send queue too), its connection is dropped. Other clients
  are not delayed: daphne never blocks on one socket.
- A client that offers permessage-deflate (browsers do) gets it, without the
  server's context takeover (runner.compression); one that does not gets plain
  frames.
- A snapshot, sent as a SharedText (core.frames) to many sockets at once, is
  framed once, and compressed once for every socket that compresses: each socket
  gets the same bytes written, without autobahn's per-message work, and straight
  into the kernel when nothing is queued before them (as asyncio's own transports
  do) instead of on the reactor's next turn. A socket's own messages (pong,
  error, auth) are framed the same way, for it alone, so that no compressor is
  kept per socket.
  daphne's --websocket-max-message-size bounds what clients send; it does not
  stop a snapshot bigger than that from going out.
- A close carries the application's reason (daphne 4.2 drops it), and may have
  code 1011 (autobahn's sendClose() refuses it; the frame is sent as daphne's own
  error handling sends it).
- autobahn pretty-prints its configuration for a debug log line on every new
  connection, logged or not; here that formatting happens only if the line is.
- The access log prints paths without their query strings, which may carry a
  token (?token=); daphne prints an HTTP request's whole URL.
- A request must arrive within METRICS_HTTP_HEADER_TIMEOUT seconds, however
  slowly its bytes come; one address may hold METRICS_MAX_PENDING_PER_IP
  connections whose request has not arrived; near its descriptor limit the
  server closes new connections at once and keeps serving the ones it has
  (runner.connections).
- A handshake may wait 30 s, not daphne's 5 s, for the application to accept:
  in a storm of thousands of connects the last ones queue for seconds, and a
  5 s limit turns that wait into HTTP 403 for all of them at once. Give
  --websocket_connect_timeout to choose another limit.

The byte bound on a slow client, the framing (and compressing) once and the
straight write, and the lazy formatting use library internals: runner.extensions
checks each at start-up and runs without it (slower) where it does not fit, or when
METRICS_SERVER_EXTENSIONS=0. Without them a slow client is still dropped, by the
timeout alone, and autobahn sends each snapshot, compressing it for each socket
that compresses, and refusing (and logging) any bigger than
--websocket-max-message-size, a limit it applies both ways.
"""

import fcntl
import logging
import struct
import sys
import termios
import time
from collections.abc import Callable

from daphne import ws_protocol
from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings

from core import instruments
from core.closes import fit_reason
from runner import extensions
from runner.compression import accept_deflate
from runner.connections import GuardedHTTPFactory

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


class BoundedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """daphne's protocol, dropping clients too slow to take what is sent, and
    closing with the application's reason."""

    backlogged_since: float | None = None
    dropped_as_slow = False

    def handle_reply(self, message):
        # daphne's own handling of a close after accept, with the reason kept.
        closing = message.get("type") == "websocket.close"
        if closing and self.state != self.STATE_CONNECTING:
            self.serverClose(message.get("code"), message.get("reason"))
            return
        super().handle_reply(message)

    def serverClose(self, code=None, reason=None):
        code = 1000 if code is None else code
        reason = fit_reason(reason)
        if code == 1000 or 3000 <= code <= 4999:
            self.sendClose(code=code, reason=reason)
        else:
            # Codes such as 1011 that autobahn leaves to the server itself: the frame
            # daphne sends when an application fails, with the reason added.
            self.sendCloseFrame(code=code, reasonUtf8=reason and reason.encode())

    def serverSend(self, content, binary=False):
        if self.too_slow():
            return
        frame = extensions.ready_frame(self, content)
        if frame is not None:
            extensions.write_now(self.transport, frame)
            return
        super().serverSend(content, binary)

    def check_timeouts(self):
        super().check_timeouts()
        self.too_slow()

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
        if not self.dropped_as_slow:
            self.dropped_as_slow = True
            instruments.slow_clients_dropped.inc()
        return True


def without_query_strings(action_logger: Callable) -> Callable:
    """daphne's action logger (the access log), given paths without query strings."""

    def log_action(protocol: str, action: str, details: dict) -> None:
        path = details.get("path")
        if isinstance(path, str) and "?" in path:
            details = {**details, "path": path.partition("?")[0]}
        action_logger(protocol, action, details)

    return log_action


class WebServer(Server):
    """daphne's server, whose WebSocket factory builds BoundedWebSocketProtocol,
    closes oversized messages with 1009 and accepts permessage-deflate, whose HTTP
    factory guards what connections it takes (runner.connections), and whose access
    log prints no query strings; with the extensions that fit turned on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.action_logger is not None:
            self.action_logger = without_query_strings(self.action_logger)
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
        factory.setProtocolOptions(
            failByDrop=False, perMessageCompressionAccept=accept_deflate
        )
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
