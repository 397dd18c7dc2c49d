"""Which permessage-deflate offers (RFC 7692) the web server accepts, and how.

A socket compresses each message on its own (no context takeover on the server's
side), so that one compressed snapshot suits every compressing socket: the server
compresses it once per process (core.frames.SharedText.deflated_frame). The
response says so (server_no_context_takeover) even when the client did not ask,
as RFC 7692 section 7.1.1.1 allows, so the client need not keep a window for it.

An offer that limits the server's window below the one the shared payload is
compressed with (server_max_window_bits < 15) is declined: the client gets plain
frames, rather than the server compressing each snapshot for it alone. A client
that lets the server limit its own window is asked for the smallest one: what a
client sends is small, and the server keeps a decompressor (and its window) per
socket.
"""

from collections.abc import Sequence

from autobahn.websocket.compress import (
    PerMessageCompressOffer,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)

from core.frames import DEFLATE_WINDOW_BITS

# The smallest window RFC 7692 lets the server ask of a client (512 bytes).
CLIENT_WINDOW_BITS = 9


class IndependentMessagesAccept(PerMessageDeflateOfferAccept):
    """An accepted offer whose response always names server_no_context_takeover."""

    def get_extension_string(self) -> str:
        response = super().get_extension_string()
        if self.offer.request_no_context_takeover:  # named already
            return response
        return f"{response}; server_no_context_takeover"


def fits_shared_payload(offer: PerMessageCompressOffer) -> bool:
    """Whether the offer is permessage-deflate with a window the shared payload
    may use (the client does not limit the server's, or limits it to 15 bits)."""
    return isinstance(offer, PerMessageDeflateOffer) and (
        offer.request_max_window_bits in (0, DEFLATE_WINDOW_BITS)
    )


def accept_deflate(
    offers: Sequence[PerMessageCompressOffer],
) -> IndependentMessagesAccept | None:
    """Accept the first permessage-deflate offer that fits the shared payload,
    without the server's context takeover; None (plain frames) if none fits."""
    for offer in offers:
        if fits_shared_payload(offer):
            return IndependentMessagesAccept(
                offer,
                request_max_window_bits=(
                    CLIENT_WINDOW_BITS if offer.accept_max_window_bits else 0
                ),
                no_context_takeover=True,
            )
    return None
