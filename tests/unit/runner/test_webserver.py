"""The pieces runner.webserver adds to daphne, on their own."""

import pprint

from runner.webserver import HANDSHAKE_TIMEOUT, LazyFormat, with_handshake_timeout


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


def test_lazy_format_prints_what_pformat_would():
    value = [("openHandshakeTimeout", 5, "WebSocketFactory")] * 3
    assert str(LazyFormat(value)) == pprint.pformat(value)
