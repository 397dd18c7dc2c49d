"""The pieces runner.webserver adds to daphne, on their own."""

from daphne import ws_protocol

from runner.compression import accept_deflate
from runner.webserver import (
    HANDSHAKE_TIMEOUT,
    BoundedWebSocketProtocol,
    WebServer,
    WebServerCommandLine,
    with_handshake_timeout,
)


def test_handshake_timeout_is_added_unless_given():
    args = ["-p", "8000", "monitor.asgi:application"]
    assert with_handshake_timeout(args) == [
        "--websocket_connect_timeout",
        str(HANDSHAKE_TIMEOUT),
        *args,
    ]


def test_a_given_handshake_timeout_is_kept():
    for given in (
        ["--websocket_connect_timeout", "7"],
        ["--websocket_connect_timeout=7"],
    ):
        args = [*given, "monitor.asgi:application"]
        assert with_handshake_timeout(args) == args


def test_the_command_line_serves_with_our_server():
    assert WebServerCommandLine.server_class is WebServer


def test_daphnes_websocket_factory_builds_our_protocol_closes_with_1009_and_deflates(
    monkeypatch,
):
    monkeypatch.setattr("runner.extensions.enable", lambda enabled: [])
    server = WebServer(application=None, endpoints=["tcp:port=0"])
    # What daphne's Server.run() does first.
    server.ws_factory = ws_protocol.WebSocketFactory(server, server="daphne")
    assert server.ws_factory.protocol is BoundedWebSocketProtocol
    assert server.ws_factory.failByDrop is False
    assert server.ws_factory.perMessageCompressionAccept is accept_deflate
