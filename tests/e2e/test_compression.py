"""permessage-deflate on a real daphne worker, with its extensions on and off:
offered by a real websockets client, negotiated without the server's context
takeover, the same snapshots as a plain client's, compressed on the wire."""

import asyncio
import base64
import json
import os
import zlib

import pytest

from tests.support import processes
from tests.support.clients import RECEIVE_WITHIN, metrics_url, open_socket, receive_json
from tests.support.hosts import PONG

pytestmark = pytest.mark.django_db(transaction=True)

EXTENSIONS = pytest.mark.parametrize(
    "extensions", ["1", "0"], ids=["extensions", "stock"]
)
# What a browser offers (Chrome's header).
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"


async def next_snapshot(ws) -> dict:
    """The next metrics message on a socket."""
    while (message := await receive_json(ws))["type"] != "metrics":
        pass
    return message


@EXTENSIONS
async def test_compressing_and_plain_clients_get_the_same_snapshots(
    tmp_path, access_token, extensions
):
    with processes.daphne(tmp_path, METRICS_SERVER_EXTENSIONS=extensions) as (_, port):
        compressing = await open_socket(port, access_token, compression="deflate")
        plain = await open_socket(port, access_token, compression=None)
        offered = compressing.response.headers["Sec-WebSocket-Extensions"]
        assert offered.split("; ")[0] == "permessage-deflate"
        assert "server_no_context_takeover" in offered.split("; ")
        assert "Sec-WebSocket-Extensions" not in plain.response.headers
        with processes.publisher(tmp_path, "--interval", "1"):
            streams = [
                [await next_snapshot(ws) for _ in range(3)]
                for ws in (compressing, plain)
            ]
        # A socket's own messages are compressed too, between the snapshots.
        await compressing.send('{"type": "ping"}')
        assert await receive_json(compressing) == PONG
        await compressing.close()
        await plain.close()
    assert streams[0] == streams[1]


async def raw_socket(port: int, token: str, offer: str | None):
    """A client that does the WebSocket handshake itself, so that the frames it
    reads are the bytes on the wire; return its reader, writer and the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = metrics_url(port, token).removeprefix(f"ws://127.0.0.1:{port}")
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
    ]
    if offer is not None:
        lines.append(f"Sec-WebSocket-Extensions: {offer}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RECEIVE_WITHIN)
    assert response.startswith(b"HTTP/1.1 101 ")
    return reader, writer, response.decode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its first byte and its payload as sent."""
    head = await asyncio.wait_for(reader.readexactly(2), RECEIVE_WITHIN)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2))
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8))
    return head[0], await reader.readexactly(size)


@EXTENSIONS
async def test_snapshots_are_compressed_on_the_wire_for_a_browsers_offer_only(
    tmp_path, access_token, extensions
):
    with processes.daphne(tmp_path, METRICS_SERVER_EXTENSIONS=extensions) as (_, port):
        with processes.publisher(tmp_path, "--once") as publisher:
            assert publisher.wait(30) == 0
        # The latest snapshot comes at once on connect.
        reader, writer, response = await raw_socket(port, access_token, BROWSER_OFFER)
        first_byte, payload = await read_frame(reader)
        plain_reader, plain_writer, plain_response = await raw_socket(
            port, access_token, None
        )
        plain_first_byte, text = await read_frame(plain_reader)
        for stream in (writer, plain_writer):
            stream.close()
    assert (
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9; "
        "server_no_context_takeover\r\n"
    ) in response
    assert "Sec-WebSocket-Extensions" not in plain_response
    assert first_byte == 0xC1  # FIN, RSV1 (compressed), text
    assert plain_first_byte == 0x81  # FIN, text
    inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert inflated == text
    assert json.loads(text)["type"] == "metrics"
    assert len(payload) < len(text) / 2
