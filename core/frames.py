"""Text messages that many sockets receive unchanged, framed once for all of them."""

import functools
import struct

TEXT_FRAME = 0x81  # FIN bit and the text opcode (RFC 6455, section 5.2)


class SharedText(str):
    """A str sent as is to many WebSocket clients.

    A server that knows this type (runner.webserver) writes the same ready-made
    frame bytes to every socket instead of encoding and framing the text once per
    socket; any other ASGI server sends it as the plain str it is.
    """

    @functools.cached_property
    def frame(self) -> bytes:
        """This text as one unmasked, unfragmented, uncompressed text frame."""
        payload = self.encode()
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", TEXT_FRAME, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", TEXT_FRAME, 126, size)
        else:
            header = struct.pack("!BBQ", TEXT_FRAME, 127, size)
        return header + payload
