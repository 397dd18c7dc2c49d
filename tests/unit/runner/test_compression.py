"""Which permessage-deflate offers the web server accepts, and how shared deflated
frames and autobahn's own compressed messages mix on one socket."""

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer
from twisted.internet.testing import StringTransport
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from core.frames import SharedText
from runner import extensions
from runner.compression import accept_deflate

HANDSHAKE = (
    "GET /api/ws/metrics HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: {offer}\r\n"
    "\r\n"
)


def test_a_browsers_offer_is_accepted_without_the_servers_context_takeover():
    offer = PerMessageDeflateOffer(accept_max_window_bits=True)
    accept = accept_deflate([offer])
    assert accept.get_extension_string() == (
        "permessage-deflate; client_max_window_bits=9; server_no_context_takeover"
    )


def test_an_offer_asking_for_no_context_takeover_is_answered_once():
    offer = PerMessageDeflateOffer(
        accept_max_window_bits=False, request_no_context_takeover=True
    )
    assert accept_deflate([offer]).get_extension_string() == (
        "permessage-deflate; server_no_context_takeover"
    )


def test_a_smaller_server_window_is_declined_for_the_next_offer_or_plain_frames():
    small = PerMessageDeflateOffer(request_max_window_bits=10)
    full = PerMessageDeflateOffer(request_max_window_bits=15)
    assert accept_deflate([small]) is None
    assert accept_deflate([small, full]).offer is full


def open_compressing_socket() -> tuple[WebSocketServerProtocol, StringTransport]:
    """An autobahn server protocol over a memory transport, after a handshake in
    which a client offered permessage-deflate as browsers do."""
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    offer = "permessage-deflate; client_max_window_bits"
    protocol.dataReceived(HANDSHAKE.format(offer=offer).encode())
    assert protocol.state == WebSocketServerProtocol.STATE_OPEN
    transport.clear()
    return protocol, transport


@pytest.fixture
def compressing_socket(monkeypatch):
    """One compressing socket, with ready-frames on."""
    monkeypatch.setattr(extensions.READY_FRAMES, "active", True)
    return open_compressing_socket()


def read_messages(data: bytes) -> list[str]:
    """Every frame in `data`, each compressed, as a client that keeps its window
    would inflate it."""
    decoder = PerMessageDeflate(False, False, 15, 9)
    reader = StreamReader()
    reader.feed_data(data)
    messages = []
    while reader.buffer:
        assert reader.buffer[0] == 0xC1  # FIN, RSV1 (compressed), text
        parser = Frame.parse(reader.read_exact, mask=False, extensions=[decoder])
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        assert frame.opcode == Opcode.TEXT
        messages.append(frame.data.decode())
    return messages


def test_shared_frames_and_autobahns_compressed_messages_mix(compressing_socket):
    protocol, transport = compressing_socket
    sent = []
    for number in range(3):
        shared = SharedText(f'{{"type":"metrics","n":{number}}}' * 30)
        transport.write(extensions.ready_frame(protocol, shared))
        # A message autobahn compresses itself, as when ready-frames is off.
        own = f'{{"type":"pong","n":{number}}}' * 30
        protocol.sendMessage(own.encode())
        sent += [shared, own]
    assert read_messages(transport.value()) == sent


def test_a_snapshot_is_deflated_once_for_every_compressing_socket(
    compressing_socket,
):
    first, _ = compressing_socket
    second, _ = open_compressing_socket()
    shared = SharedText('{"type":"metrics"}' * 30)
    frame = extensions.ready_frame(first, shared)
    assert frame is shared.deflated_frame
    assert extensions.ready_frame(second, shared) is frame
    # A socket's own message gets a frame made for it alone, compressed the same way.
    own = extensions.ready_frame(second, '{"type":"pong"}' * 30)
    assert own == SharedText('{"type":"pong"}' * 30).deflated_frame
