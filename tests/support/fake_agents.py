"""Agents written out by hand, for tests of the server's agent socket: each frame is
the test's to choose, bad ones included (docs/agent-protocol.md)."""

import json
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from agent.snapshots import format_timestamp
from tests.support.clients import RECEIVE_WITHIN, receive_json


def iso(moment: float) -> str:
    """A wall time written as snapshots write it."""
    return format_timestamp(datetime.fromtimestamp(moment, tz=UTC))


def snapshot_frame(taken_at: float, marker: float = 0.0, **extra: Any) -> str:
    """A valid snapshot frame taken at `taken_at`, told apart by `marker` (its CPU
    usage)."""
    data = {
        "cpu": {"usage_percent": marker, "per_core": [marker]},
        "memory": {"usage_percent": 1.0},
        "network": {"bytes_sent_per_sec": 1.0, "interfaces": {}},
        "disk": {"partitions": {}, "io": {}},
    }
    frame = {"type": "metrics", "timestamp": iso(taken_at), "data": data, **extra}
    return json.dumps(frame)


async def open_agent(
    port: int, token: str | None, query: str = "interval=1"
) -> ClientConnection:
    """Connect to the agent socket with `token` as an agent would (no Origin)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = f"ws://127.0.0.1:{port}/api/ws/agent{'?' if query else ''}{query}"
    return await connect(
        url, additional_headers=headers, open_timeout=RECEIVE_WITHIN, max_size=None
    )


async def connected_agent(port: int, token: str, query: str = "interval=1"):
    """An agent socket past its hello; returns the socket and the hello."""
    ws = await open_agent(port, token, query)
    hello = await receive_json(ws)
    assert hello["type"] == "hello", hello
    return ws, hello
