"""SharedText's ready-made frame, read back by an independent WebSocket parser."""

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from core.frames import SharedText


def parse_one(data: bytes) -> tuple[Frame, bool]:
    """Parse one server-to-client frame; also say whether bytes were left over."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value, reader.at_eof() is False and bool(reader.buffer)
    raise AssertionError("the frame is incomplete")


# Payload sizes (in bytes) on each side of the three length forms of RFC 6455.
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_frame_of_any_size_parses_back_to_the_text(size):
    text = SharedText("x" * size)
    frame, left_over = parse_one(text.frame)
    assert frame.opcode == Opcode.TEXT
    assert frame.fin
    assert frame.data.decode() == text
    assert not left_over


def test_multibyte_text_is_framed_by_its_encoded_length():
    text = SharedText("é€😀" * 30)  # 90 characters, 270 bytes
    frame, left_over = parse_one(text.frame)
    assert frame.data.decode() == text
    assert not left_over


def test_shared_text_is_the_str_it_wraps():
    text = SharedText('{"type":"metrics"}')
    assert text == '{"type":"metrics"}'
    assert isinstance(text, str)
