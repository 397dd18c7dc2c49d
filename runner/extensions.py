"""Every reach of ours into another library's private names, each checked at start-up.

The web server (runner.webserver) keeps its promises through public means: daphne's
protocol subclassed, autobahn's options, daphne's flags. What makes it faster, or
bounds a slow client's buffer by bytes, needs names the libraries do not promise to
keep. Each such reach is an Extension here: at start-up its check looks at the
installed libraries, and if an internal is missing or has changed shape, the server
logs one warning naming it and runs with the stock behaviour instead: slower, and
otherwise as the table says. METRICS_SERVER_EXTENSIONS=0 turns all of them off.

Other reaches were removed rather than kept here: daphne's WebSocketFactory is
configured through a Server subclass (runner.webserver) instead of replaced, the
origin check subclasses Channels' OriginValidator (accounts.origins), and the cache
backend keeps a Redis client of its own (core.cache) instead of Django's `_cache`.

| extension | internals it uses | what it buys | stock behaviour |
|---|---|---|---|
| send-buffer | Twisted FileDescriptor dataBuffer, offset, _tempDataLen | the byte bound on a slow client (METRICS_WS_SEND_BUFFER_BYTES) | only the slow-client timeout drops it |
| direct-write | Twisted tcp.Connection TLS, writeSomeData | a snapshot goes straight to the kernel | written on the reactor's next turn |
| ready-frames | autobahn WebSocketProtocol send_state, send_queue, _perMessageCompress | a snapshot framed (and compressed) once per process, whatever its size; no compressor kept per socket | autobahn frames (and compresses) it for each socket, keeping a compressor (~256 KiB) on each socket it compressed for, and refuses one over --websocket-max-message-size |
| lazy-pformat | autobahn.websocket.protocol pformat, Timings.__str__ | no unlogged pretty-printing per connect | autobahn formats it for each connect |
"""  # noqa: E501 - a table reads best unwrapped

from __future__ import annotations

import importlib.metadata
import logging
import pprint
from collections.abc import Callable
from dataclasses import dataclass

from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.compress import PerMessageDeflate, PerMessageDeflateOffer
from twisted.internet import abstract, tcp

from core.frames import DEFLATE_WINDOW_BITS, SharedText
from runner.compression import accept_deflate

logger = logging.getLogger(__name__)


class Unfit(Exception):
    """An internal is missing, or does not behave as the extension expects."""


@dataclass
class Extension:
    """One reach into a library's internals, on only while its check passes."""

    name: str
    uses: tuple[str, str]  # a distribution, and which of its internals
    fallback: str
    check: Callable[[], None]  # raises when the internals do not fit
    install: Callable[[], None] | None = None
    requires: tuple[Extension, ...] = ()
    active: bool = False

    def problem(self) -> str | None:
        """What keeps this extension off with the installed libraries, if anything."""
        for needed in self.requires:
            if not needed.active:
                return f"it needs {needed.name}, which is off"
        try:
            self.check()
        except Unfit as error:
            return str(error)
        except Exception as error:  # any other surprise: the internals changed too
            return f"{type(error).__name__}: {error}"
        return None


def enable(enabled: bool = True) -> list[Extension]:
    """Turn on every extension whose check passes (none if not `enabled`); log one
    warning for each that stays off. Return those turned on."""
    for extension in EXTENSIONS:
        extension.active = False
    if not enabled:
        logger.info(
            "Server extensions off (METRICS_SERVER_EXTENSIONS=0): stock daphne, "
            "Twisted and autobahn behaviour"
        )
        return []
    for extension in EXTENSIONS:
        problem = extension.problem()
        if problem is not None:
            library, internals = extension.uses
            logger.warning(
                "Server extension %s is off: %s (uses %s of %s %s). Instead: %s.",
                extension.name,
                problem,
                internals,
                library,
                installed_version(library),
                extension.fallback,
            )
            continue
        if extension.install is not None:
            extension.install()
        extension.active = True
    active = [extension for extension in EXTENSIONS if extension.active]
    names = ", ".join(extension.name for extension in active) or "none"
    logger.info("Server extensions on: %s", names)
    return active


def installed_version(distribution: str) -> str:
    """The installed version of a distribution, or "?"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --- send-buffer: the bytes Twisted holds for a socket --------------------------------


def buffered_bytes(transport: object) -> int:
    """Bytes Twisted holds in our process because the kernel would not take them
    (0 when the send-buffer extension is off: unknown)."""
    if not SEND_BUFFER.active:
        return 0
    queued = len(getattr(transport, "dataBuffer", b""))
    unsent = queued - getattr(transport, "offset", 0)
    return unsent + getattr(transport, "_tempDataLen", 0)


class _NullReactor:
    """Just enough of a reactor for a FileDescriptor that never touches a socket."""

    def addWriter(self, selectable: object) -> None:
        pass

    def removeWriter(self, selectable: object) -> None:
        pass


class _ProbeDescriptor(abstract.FileDescriptor):
    """A connected FileDescriptor whose kernel takes one byte per write."""

    connected = 1

    def writeSomeData(self, data: bytes) -> int:
        return 1


def check_send_buffer() -> None:
    probe = _ProbeDescriptor(reactor=_NullReactor())
    probe.write(b"abcd")
    if _held(probe) != 4:
        raise Unfit("write() no longer counts what it queues in _tempDataLen")
    probe.doWrite()
    if _held(probe) != 3:
        raise Unfit("doWrite() no longer keeps dataBuffer and offset")


def _held(transport: abstract.FileDescriptor) -> int:
    # As buffered_bytes() reads them, but failing loudly where a name is missing.
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


SEND_BUFFER = Extension(
    name="send-buffer",
    uses=("Twisted", "FileDescriptor.dataBuffer, .offset and ._tempDataLen"),
    fallback="a slow client is dropped by METRICS_WS_SLOW_CLIENT_TIMEOUT only",
    check=check_send_buffer,
)


# --- direct-write: a frame straight into the kernel -----------------------------------


def write_now(transport: object, data: bytes) -> None:
    """Hand the kernel what it takes of `data` now; Twisted queues the rest.

    Only on a plain TCP connection with nothing queued (so order is kept) that is
    not closing; anything else goes through Twisted's write() as usual.
    """
    if (
        DIRECT_WRITE.active
        and isinstance(transport, tcp.Connection)
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


def check_direct_write() -> None:
    if not isinstance(tcp.Connection.TLS, bool):
        raise Unfit("tcp.Connection.TLS is no longer a flag")
    parameters = tcp.Connection.writeSomeData.__code__.co_varnames[:2]
    if parameters != ("self", "data"):
        raise Unfit("tcp.Connection.writeSomeData no longer takes (data)")


DIRECT_WRITE = Extension(
    name="direct-write",
    uses=("Twisted", "tcp.Connection.TLS and .writeSomeData"),
    fallback="snapshots go out on the reactor's next turn",
    check=check_direct_write,
    requires=(SEND_BUFFER,),
)


# --- ready-frames: one frame for every socket -----------------------------------------


def ready_frame(
    protocol: autobahn_protocol.WebSocketProtocol, content: object
) -> bytes | None:
    """The frame to write for a text message, bypassing autobahn: a SharedText's
    ready-made frame (any other str is made one for this socket alone), deflated
    where the socket compresses each message on its own with the window the shared
    payload uses (runner.compression). None where autobahn must send it: the
    extension off, not between messages on an open socket with nothing queued,
    compression of another kind, or fragmentation."""
    if not (
        READY_FRAMES.active
        and isinstance(content, str)
        and protocol.state == protocol.STATE_OPEN
        and protocol.send_state == protocol.SEND_STATE_GROUND
        and not protocol.send_queue
    ):
        return None
    text = content if isinstance(content, SharedText) else SharedText(content)
    compression = protocol._perMessageCompress
    if compression is None:
        frame = text.frame
    elif compresses_each_message_alike(compression):
        frame = text.deflated_frame
    else:
        return None
    if 0 < protocol.autoFragmentSize < len(frame):
        return None
    return frame


def compresses_each_message_alike(compression: object) -> bool:
    """Whether a socket's compression takes SharedText.deflated_frame as is:
    permessage-deflate, each message on its own, with the same window."""
    return (
        isinstance(compression, PerMessageDeflate)
        and compression.server_no_context_takeover
        and compression.server_max_window_bits == DEFLATE_WINDOW_BITS
    )


def check_ready_frames() -> None:
    ws = autobahn_protocol.WebSocketProtocol
    if "autoFragmentSize" not in ws.CONFIG_ATTRS_COMMON:
        raise Unfit("autoFragmentSize is no longer a protocol option")
    if "_perMessageCompress" not in ws.sendMessage.__code__.co_names:
        raise Unfit("sendMessage() no longer compresses through _perMessageCompress")
    made = set(ws._connectionMade.__code__.co_names)
    missing = {"send_state", "send_queue", "_perMessageCompress"} - made
    if missing:
        raise Unfit(f"a new connection no longer sets {', '.join(sorted(missing))}")
    for constant in ("STATE_OPEN", "SEND_STATE_GROUND"):
        getattr(ws, constant)  # an AttributeError if it is gone
    # A socket that compressed as the server accepts (a browser's offer) must
    # take the shared deflated frame.
    accept = accept_deflate([PerMessageDeflateOffer()])
    compression = PerMessageDeflate.create_from_offer_accept(True, accept)
    if not compresses_each_message_alike(compression):
        raise Unfit("PerMessageDeflate no longer keeps its server-side parameters")


READY_FRAMES = Extension(
    name="ready-frames",
    uses=("autobahn", "WebSocketProtocol send_state, send_queue, _perMessageCompress"),
    fallback="autobahn frames each snapshot per socket, none over the size limit",
    check=check_ready_frames,
)


# --- lazy-pformat: no pretty-printing nobody reads ------------------------------------


class LazyFormat:
    """pprint.pformat(value), formatted only when a log line prints it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def format_timings(timings: autobahn_protocol.Timings) -> str:
    """autobahn's Timings as text, as its own __str__ made it."""
    return pprint.pformat(timings._timings)


def check_lazy_pformat() -> None:
    # A sixth of a connection's handshake went into formatting text nobody logged.
    if autobahn_protocol.pformat not in (pprint.pformat, LazyFormat):
        raise Unfit("autobahn.websocket.protocol.pformat is not pprint.pformat")
    timings = autobahn_protocol.Timings()
    timings.track("probe")
    if format_timings(timings) != pprint.pformat({"probe": timings["probe"]}):
        raise Unfit("Timings no longer keeps its figures in _timings")


def install_lazy_pformat() -> None:
    autobahn_protocol.pformat = LazyFormat
    # autobahn's one other use of it must still return text.
    autobahn_protocol.Timings.__str__ = format_timings


LAZY_PFORMAT = Extension(
    name="lazy-pformat",
    uses=("autobahn", "autobahn.websocket.protocol.pformat and Timings.__str__"),
    fallback="autobahn formats its settings on every connect",
    check=check_lazy_pformat,
    install=install_lazy_pformat,
)


EXTENSIONS = (SEND_BUFFER, DIRECT_WRITE, READY_FRAMES, LAZY_PFORMAT)
