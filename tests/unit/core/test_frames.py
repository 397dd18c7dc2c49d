"""SharedText's ready-made frames, read back by an independent WebSocket parser."""

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from core.frames import SharedText


def parse_one(
    data: bytes, decoder: PerMessageDeflate | None = None
) -> tuple[Frame, bool]:
    """Parse one server-to-client frame (inflating it with `decoder`, if given);
    also say whether bytes were left over."""
    reader = StreamReader()
    reader.feed_data(data)
    extensions = [decoder] if decoder is not None else None
    parser = Frame.parse(reader.read_exact, mask=False, extensions=extensions)
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


def a_client_decoder() -> PerMessageDeflate:
    """A client's permessage-deflate decoder that keeps its window from message to
    message (as one does whose offer did not ask for server_no_context_takeover)."""
    return PerMessageDeflate(False, False, 15, 15)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 200_000])
def test_deflated_frame_of_any_size_inflates_back_to_the_text(size):
    text = SharedText("".join(f"{n % 97}," for n in range(size))[:size])
    # FIN, RSV1 (compressed, RFC 7692 section 6), the text opcode.
    assert text.deflated_frame[0] == 0xC1
    frame, left_over = parse_one(text.deflated_frame, a_client_decoder())
    assert frame.opcode == Opcode.TEXT
    assert frame.fin
    assert frame.data.decode() == text
    assert not left_over


def test_a_snapshot_deflates_to_a_fraction_of_its_size():
    text = SharedText('{"type":"metrics","data":{"cpu":{"per_core":[' + "1.5," * 99)
    frame, _ = parse_one(text.deflated_frame, a_client_decoder())
    assert frame.data.decode() == text
    assert len(text.deflated_frame) < len(text.frame) / 3


def test_deflated_frames_need_no_earlier_message():
    # A decoder that keeps its window reads each of them, in any order.
    texts = [SharedText(f'{{"type":"metrics","n":{n}}}' * 20) for n in range(3)]
    decoder = a_client_decoder()
    for text in [*texts, *reversed(texts)]:
        frame, _ = parse_one(text.deflated_frame, decoder)
        assert frame.data.decode() == text
