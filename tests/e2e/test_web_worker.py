"""A web worker serves sockets without loading psutil: that is the publisher's."""

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.hosts import PONG

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
    processes.collect_static()
    result = processes.run_to_end(
        [sys.executable, "-c", CONNECT, access_token], processes.service_env()
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["connected"] is True
    assert report["reply"] == PONG
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


# --- static files that were never collected, or not since a change ----------------


def start_web_worker(tmp_path, static_root: Path) -> tuple[int | None, str, int]:
    """Start a real web worker serving STATIC_ROOT=static_root; return its exit
    status (None if it served), its output, and the worst status its pages gave."""
    port = processes.free_port()
    env = processes.service_env(
        DJANGO_SETTINGS_MODULE="tests.support.uncollected_settings",
        UNCOLLECTED_STATIC_ROOT=str(static_root),
    )
    args = [sys.executable, "-m", "runner.webserver", "-b", "127.0.0.1"]
    args += ["-p", str(port), "monitor.asgi:application"]
    log = tmp_path / "worker.log"
    worst = 0
    with processes.running(args, env, log) as worker:
        try:
            processes.wait_for_port(port, worker, processes.START_TIMEOUT)
        except RuntimeError:  # it exited before listening
            return worker.wait(), log.read_text(), worst
        for path in ("/admin/login/", "/"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as page:
                    worst = max(worst, page.status)
            except urllib.error.HTTPError as error:
                worst = max(worst, error.code)
    return None, log.read_text(), worst


def test_a_worker_without_collected_static_files_refuses_to_start_naming_it(
    tmp_path,
):
    status, output, worst = start_web_worker(tmp_path, tmp_path / "empty")
    assert worst < 500, "a page answered 500"
    assert status not in (None, 0), "the worker served without its static files"
    assert "collectstatic" in output
    assert "STATIC_ROOT" in output
    assert "Traceback" not in output


def test_a_worker_with_stale_static_files_refuses_to_start_naming_collectstatic(
    tmp_path,
):
    processes.collect_static()
    stale = tmp_path / "static"
    shutil.copytree(processes.ROOT / "staticfiles", stale)
    manifest = json.loads((stale / "staticfiles.json").read_text())
    del manifest["paths"]["metrics/dashboard.css"]  # added since the last collect
    (stale / "staticfiles.json").write_text(json.dumps(manifest))
    status, output, worst = start_web_worker(tmp_path, stale)
    assert worst < 500, "a page answered 500"
    assert status not in (None, 0), "the worker served stale static files"
    assert "metrics/dashboard.css" in output
    assert "collectstatic" in output
    assert "Traceback" not in output
