"""Real WebSocket clients for tests, with a time limit on every receive."""

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

RECEIVE_WITHIN = 15.0


def metrics_url(port: int, token: str | None, host: str | None = None) -> str:
    """Return the metrics socket URL on a local port, with the token and the host
    (?host=NAME) if given."""
    url = f"ws://127.0.0.1:{port}/api/ws/metrics"
    query = [] if token is None else [f"token={token}"]
    if host is not None:
        query.append(f"host={host}")
    return f"{url}?{'&'.join(query)}" if query else url


async def open_socket(
    port: int, token: str | None, host: str | None = None, **options: Any
) -> ClientConnection:
    """Open the metrics socket (of `host` if given) as a browser on an allowed
    origin would."""
    options.setdefault("origin", f"http://127.0.0.1:{port}")
    url = metrics_url(port, token, host)
    return await connect(url, open_timeout=RECEIVE_WITHIN, **options)


async def receive_json(ws: ClientConnection, within: float = RECEIVE_WITHIN) -> Any:
    """Receive one text frame and decode it."""
    return json.loads(await asyncio.wait_for(ws.recv(), within))


async def close_frame(
    ws: ClientConnection, within: float = RECEIVE_WITHIN
) -> tuple[int, str]:
    """Wait for the server to close the socket; return the code and reason it sent."""
    closed = None
    try:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    except ConnectionClosed as error:
        closed = error.rcvd
    if closed is None:
        raise AssertionError("the server sent no close frame")
    return closed.code, closed.reason


async def close_code(ws: ClientConnection, within: float = RECEIVE_WITHIN) -> int:
    """Wait for the server to close the socket; return the close code it sent."""
    code, _ = await close_frame(ws, within)
    return code
