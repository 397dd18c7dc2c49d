"""Text messages that many sockets receive unchanged, framed once for all of them."""

import functools
import struct
import zlib

TEXT_FRAME = 0x81  # FIN bit and the text opcode (RFC 6455, section 5.2)
# The same, with RSV1: the payload is compressed (RFC 7692, section 6).
DEFLATED_TEXT_FRAME = 0xC1
# The window a deflated frame is compressed with (RFC 7692's largest, 32 KiB): a
# client that limits the server's window (server_max_window_bits) below it cannot
# be sent the shared payload.
DEFLATE_WINDOW_BITS = 15
# What a sync flush ends with, and a permessage-deflate payload leaves off
# (RFC 7692, section 7.2.1).
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def make_frame(first_byte: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented frame: `first_byte` (FIN, RSV bits and opcode),
    the payload's length and the payload."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first_byte, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first_byte, 126, size)
    else:
        header = struct.pack("!BBQ", first_byte, 127, size)
    return header + payload


def deflate_message(payload: bytes) -> bytes:
    """A message's payload compressed for permessage-deflate without context
    takeover: raw DEFLATE of this message alone, its sync-flush tail left off."""
    compressor = zlib.compressobj(
        zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, -DEFLATE_WINDOW_BITS
    )
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data.removesuffix(DEFLATE_TAIL)


class SharedText(str):
    """A str sent as is to many WebSocket clients.

    A server that knows this type (runner.webserver) writes the same ready-made
    frame bytes to every socket instead of encoding, compressing and framing the
    text once per socket; any other ASGI server sends it as the plain str it is.
    """

    @functools.cached_property
    def frame(self) -> bytes:
        """This text as one unmasked, unfragmented, uncompressed text frame."""
        return make_frame(TEXT_FRAME, self.encode())

    @functools.cached_property
    def deflated_frame(self) -> bytes:
        """This text as one text frame compressed with permessage-deflate, for any
        socket that negotiated it without the server's context takeover (each
        message compressed on its own, so the same bytes suit every such socket)."""
        return make_frame(DEFLATED_TEXT_FRAME, deflate_message(self.encode()))
