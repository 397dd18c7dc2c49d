"""Resuming with offsets against real processes: a daphne worker SIGKILLed under 50
clients that resume on its restart, Redis restarted under the publisher, garbage
in the query."""

import asyncio
import logging
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import processes
from tests.support.children import free_port
from tests.support.clients import RECEIVE_WITHIN, metrics_url, receive_json
from tests.support.hosts import HOST, PONG

pytestmark = pytest.mark.django_db(transaction=True)

# What the tests measured (pytest --log-cli-level=INFO shows it).
logger = logging.getLogger(__name__)

CLIENTS = 50
# The publisher's interval: several snapshots are missed while the worker restarts.
INTERVAL = 0.5
# Live snapshots each client reads after those it missed.
LIVE_AFTER = 3


async def open_resuming(port: int, token: str, query: str = "") -> ClientConnection:
    """Open the default host's socket, with `query` (since, epoch) appended."""
    url = metrics_url(port, token) + (f"&{query}" if query else "")
    origin = f"http://127.0.0.1:{port}"
    return await connect(url, origin=origin, open_timeout=RECEIVE_WITHIN)


async def next_snapshot(ws: ClientConnection) -> dict:
    """The next metrics message (other frames skipped)."""
    while True:
        message = await receive_json(ws)
        if message["type"] == "metrics":
            return message


@dataclass
class Viewer:
    """One client's view of the stream: the seqs it got, in order, in one epoch."""

    ws: ClientConnection
    epoch: str = ""
    seqs: list[int] = field(default_factory=list)

    def got(self, message: dict) -> None:
        assert message["host"] == HOST
        assert message["epoch"] == (self.epoch or message["epoch"])
        self.epoch = message["epoch"]
        self.seqs.append(message["seq"])

    async def read_until_closed(self) -> None:
        """Record every snapshot until the socket breaks."""
        try:
            while True:
                message = await receive_json(self.ws)
                if message["type"] == "metrics":
                    self.got(message)
        except ConnectionClosed:
            return

    async def resume(self, port: int, token: str) -> int:
        """Reconnect from the last seq; record what was missed, then LIVE_AFTER
        live snapshots; return how many were missed."""
        query = f"since={self.seqs[-1]}&epoch={self.epoch}"
        self.ws = await open_resuming(port, token, query)
        frame = await receive_json(self.ws)
        assert frame == {
            "type": "resume",
            "recovered": True,
            "missed": frame["missed"],
            "host": HOST,
        }
        for _ in range(frame["missed"] + LIVE_AFTER):
            self.got(await next_snapshot(self.ws))
        await self.ws.close()
        return frame["missed"]


async def test_clients_of_a_killed_worker_resume_with_exactly_what_they_missed(
    tmp_path, access_token
):
    port = free_port()
    with ExitStack() as stack:
        worker, _ = stack.enter_context(processes.daphne(tmp_path, port=port))
        stack.enter_context(
            processes.publisher(tmp_path, "--interval", f"{INTERVAL:g}")
        )
        sockets = await asyncio.gather(
            *(open_resuming(port, access_token) for _ in range(CLIENTS))
        )
        viewers = [Viewer(ws) for ws in sockets]
        for viewer in viewers:
            viewer.got(await next_snapshot(viewer.ws))
        # Two more each, live, before the worker dies under them.
        reading = [asyncio.create_task(v.read_until_closed()) for v in viewers]
        await asyncio.sleep(2 * INTERVAL)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*reading), RECEIVE_WITHIN)
        last_before = [viewer.seqs[-1] for viewer in viewers]
        # The publisher goes on storing while the worker is away and restarts.
        stack.enter_context(processes.daphne(tmp_path, port=port))
        logger.info("worker back %.1f s after the kill", time.monotonic() - killed_at)
        missed = await asyncio.gather(
            *(viewer.resume(port, access_token) for viewer in viewers)
        )
    logger.info("missed per client: %d to %d", min(missed), max(missed))
    for viewer, before, count in zip(viewers, last_before, missed, strict=True):
        assert count > 0
        # Every seq once, in order, none missing: the missed ones, then live.
        assert viewer.seqs == list(range(viewer.seqs[0], viewer.seqs[-1] + 1))
        after = viewer.seqs[viewer.seqs.index(before) + 1 :]
        assert len(after) == count + LIVE_AFTER


async def test_a_redis_restart_changes_the_epoch_and_resumes_are_not_recovered(
    tmp_path, access_token
):
    with processes.service_on_own_redis(tmp_path, interval="1") as (
        redis_server,
        port,
        _,
    ):
        ws = await open_resuming(port, access_token)
        before = await next_snapshot(ws)
        await ws.close()
        redis_server.stop()
        redis_server.start()
        # A snapshot of the new epoch: the publisher stored one since the restart.
        deadline = time.monotonic() + 30
        while True:
            ws = await open_resuming(port, access_token)
            newest = await next_snapshot(ws)
            await ws.close()
            if newest["epoch"] != before["epoch"]:
                break
            assert time.monotonic() < deadline, "no snapshot since the restart"
            await asyncio.sleep(0.5)
        ws = await open_resuming(
            port, access_token, f"since={before['seq']}&epoch={before['epoch']}"
        )
        assert await receive_json(ws) == {
            "type": "resume",
            "recovered": False,
            "host": HOST,
        }
        latest = await next_snapshot(ws)
        assert latest["epoch"] != before["epoch"]
        live = await next_snapshot(ws)
        assert (live["epoch"], live["seq"]) == (latest["epoch"], latest["seq"] + 1)
        await ws.close()


async def test_garbage_in_since_gets_an_error_and_the_socket_goes_on(
    tmp_path, server, access_token
):
    with processes.publisher(tmp_path, "--interval", "1"):
        ws = await open_resuming(server, access_token, "since=1e9&epoch=<script>")
        error = await receive_json(ws)
        assert error["type"] == "error"
        assert error["message"].startswith("since must be a whole number")
        first = await next_snapshot(ws)
        await ws.send('{"type": "ping"}')
        frames = [await receive_json(ws) for _ in range(2)]
        assert PONG in frames
        await ws.close()
    assert first["seq"] >= 1
