"""A web worker serves sockets without loading psutil: that is the publisher's."""

import json
import sys
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.clients import open_socket, receive_json

pytestmark = pytest.mark.django_db(transaction=True)

PSUTIL_EXTENSION = "_psutil_linux"

# Runs in a child configured as a web worker is: one connect through the real ASGI
# application, then a look at what the process has imported.
CONNECT = """
import asyncio, json, sys

from channels.testing import WebsocketCommunicator

from core.redis import close_redis
from monitor.asgi import application


async def connect(token):
    comm = WebsocketCommunicator(
        application,
        f"/api/ws/metrics?token={token}",
        headers=[(b"origin", b"http://localhost")],
    )
    connected, _ = await comm.connect(timeout=10)
    await comm.send_json_to({"type": "ping"})
    reply = await comm.receive_json_from(timeout=10)
    await comm.disconnect()
    await close_redis()
    return connected, reply


connected, reply = asyncio.run(connect(sys.argv[1]))
print(json.dumps({"connected": connected, "reply": reply, "psutil": [
    name for name in sys.modules if name.partition(".")[0] == "psutil"
]}))
"""


def mapped_files(pid: int) -> str:
    """The files mapped into a process, its shared libraries among them."""
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_asgi_application_answers_a_socket_without_importing_psutil(
    access_token,
):
    result = processes.run_to_end(
        [sys.executable, "-c", CONNECT, access_token], processes.service_env()
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["connected"] is True
    assert report["reply"] == {"type": "pong"}
    assert report["psutil"] == []


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
async def test_a_daphne_worker_that_served_a_socket_has_not_loaded_psutil(
    tmp_path, access_token
):
    with (
        processes.daphne(tmp_path) as (worker, port),
        processes.publisher(tmp_path, "--interval", "1") as publisher,
    ):
        ws = await open_socket(port, access_token)
        assert (await receive_json(ws))["type"] == "metrics"
        await ws.send(json.dumps({"type": "ping"}))
        while (await receive_json(ws))["type"] != "pong":
            pass
        # The check sees psutil where it is loaded: in the publisher.
        assert PSUTIL_EXTENSION in mapped_files(publisher.pid)
        assert PSUTIL_EXTENSION not in mapped_files(worker.pid)
        await ws.close()
