"""The web server's reaches into library internals: each checked against the installed
libraries, each off with one warning naming it when it does not fit."""

import logging
import pprint

import pytest
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import abstract

from core.frames import SharedText
from runner import extensions

NAMES = ["send-buffer", "direct-write", "ready-frames", "lazy-pformat"]


@pytest.fixture(autouse=True)
def _restore_extensions(monkeypatch):
    """Each test starts with every extension off; what it installs is undone."""
    monkeypatch.setattr(autobahn_protocol, "pformat", autobahn_protocol.pformat)
    monkeypatch.setattr(
        autobahn_protocol.Timings, "__str__", autobahn_protocol.Timings.__str__
    )
    for extension in extensions.EXTENSIONS:
        monkeypatch.setattr(extension, "active", False)


def warnings_of(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "runner.extensions" and record.levelno == logging.WARNING
    ]


def test_every_extension_fits_the_installed_libraries(caplog):
    active = extensions.enable()
    assert [extension.name for extension in active] == NAMES
    assert warnings_of(caplog) == []
    assert autobahn_protocol.pformat is extensions.LazyFormat


def test_turned_off_no_extension_is_checked_or_installed(caplog, monkeypatch):
    monkeypatch.setattr(extensions.SEND_BUFFER, "check", pytest.fail)
    caplog.set_level(logging.INFO, logger="runner.extensions")
    assert extensions.enable(enabled=False) == []
    assert autobahn_protocol.pformat is pprint.pformat
    assert warnings_of(caplog) == []
    assert "METRICS_SERVER_EXTENSIONS=0" in caplog.text


def test_a_missing_internal_turns_its_extension_off_with_one_warning(
    caplog, monkeypatch
):
    # As if Twisted renamed its queue of unsent data.
    monkeypatch.delattr(abstract.FileDescriptor, "dataBuffer")
    active = extensions.enable()
    assert [extension.name for extension in active] == ["ready-frames", "lazy-pformat"]
    found = warnings_of(caplog)
    assert len(found) == 2
    assert found[0].startswith("Server extension send-buffer is off: AttributeError")
    assert "dataBuffer" in found[0]
    assert "Twisted" in found[0]
    assert "METRICS_WS_SLOW_CLIENT_TIMEOUT only" in found[0]
    assert found[1].startswith(
        "Server extension direct-write is off: it needs send-buffer"
    )


def test_an_internal_of_another_shape_turns_its_extension_off(caplog, monkeypatch):
    # As if autobahn imported pformat under another name.
    monkeypatch.setattr(autobahn_protocol, "pformat", repr)
    active = extensions.enable()
    assert "lazy-pformat" not in [extension.name for extension in active]
    assert autobahn_protocol.pformat is repr
    (warning,) = warnings_of(caplog)
    assert warning.startswith(
        "Server extension lazy-pformat is off: "
        "autobahn.websocket.protocol.pformat is not pprint.pformat"
    )


class FakeTransport:
    """A transport with data queued, whose writes are recorded."""

    dataBuffer = b"0123456789"
    offset = 4
    _tempDataLen = 5

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_with_send_buffer_off_the_buffered_bytes_are_unknown():
    assert extensions.buffered_bytes(FakeTransport()) == 0
    extensions.SEND_BUFFER.active = True
    assert extensions.buffered_bytes(FakeTransport()) == 6 + 5


def test_with_direct_write_off_data_goes_through_twisted():
    transport = FakeTransport()
    extensions.write_now(transport, b"frame")
    assert transport.written == [b"frame"]


def test_with_ready_frames_off_autobahn_frames_every_message():
    assert extensions.ready_frame(object(), SharedText("{}")) is None


def test_lazy_format_prints_what_pformat_would():
    value = [("openHandshakeTimeout", 5, "WebSocketFactory")] * 3
    assert str(extensions.LazyFormat(value)) == pprint.pformat(value)


def test_timings_still_read_as_text_with_lazy_pformat():
    extensions.enable()
    timings = autobahn_protocol.Timings()
    timings.track("open")
    assert str(timings) == pprint.pformat({"open": timings["open"]})
