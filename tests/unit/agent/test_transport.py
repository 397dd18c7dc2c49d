import socket
import ssl

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from agent.transport import Replaced, describe_error, why_closed


def closed_with(code: int, reason: str) -> ConnectionClosedError:
    return ConnectionClosedError(Close(code, reason), Close(code, reason), True)


def test_4010_means_replaced():
    with pytest.raises(Replaced, match="replaced by a newer connection"):
        why_closed(closed_with(4010, "replaced by a newer connection"))


@pytest.mark.parametrize(
    ("code", "reason", "said"),
    [
        (4001, "host disabled", "the server refused the token (4001 host disabled)"),
        (4008, "too many snapshots", "for sending too fast (4008 too many snapshots)"),
        (4009, "", "for a frame too big (4009 no reason given)"),
        (1001, "going away", "the server closed the socket (1001 going away)"),
    ],
)
def test_close_codes_are_said_in_words(code, reason, said):
    assert said in why_closed(closed_with(code, reason))


def test_a_connection_without_a_close_frame_was_lost():
    assert why_closed(ConnectionClosedError(None, None)) == "the connection was lost"
    timed_out = ConnectionClosedError(None, Close(1011, "keepalive ping timeout"))
    assert why_closed(timed_out) == "the server stopped answering pings"
    assert "1000" in why_closed(ConnectionClosedOK(Close(1000, ""), None))


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError(), "no answer within 15 s"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve"),
        (OSError(113, "No route to host"), "No route to host"),
    ],
)
def test_connection_errors_are_said_in_a_few_words(error, said):
    assert said in describe_error(error)


def test_a_refused_certificate_says_why():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    assert "self-signed certificate" in describe_error(error)
