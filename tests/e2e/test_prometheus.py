"""A real Prometheus server scrapes one of two web workers that share a
PROMETHEUS_MULTIPROC_DIR (as ./run's do), and answers through its query API: a
host's CPU gauge is the figure its viewers get over the WebSocket, and the open
sockets are those the test holds on both workers. Under ./run itself, any worker
answers for both, and a worker killed takes its sockets out of the figure."""

import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from metrics.hosts import create_host
from tests.support import processes
from tests.support.children import free_port
from tests.support.clients import open_socket, receive_json
from tests.support.fake_agents import connected_agent, snapshot_frame
from tests.support.users import watched
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "prometheus-e2e-scrape-token"
HOST = "db-1"
# CPU figures the agent sends, told apart (exact in binary, so equal as text).
FIRST, SECOND = 37.25, 81.5
WITHIN = 15.0


def prometheus_config(path: Path, target: str) -> Path:
    """A configuration scraping `target`'s /metrics every second with the token."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "monitor",
                "metrics_path": "/metrics",
                "authorization": {"credentials": TOKEN},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps(config))
    return path


def query(port: int, expression: str) -> float | None:
    """The value of an instant query with one series (None: none, or not ready)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression}
    )
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if len(result) == 1 else None


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/-/ready", timeout=2
        ) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def until_queried(port: int, expression: str, expected: float) -> None:
    """Wait until Prometheus answers `expression` with `expected`, with a deadline."""
    deadline = time.monotonic() + WITHIN
    seen = None
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(query, port, expression)
        if seen == expected:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{expression}: Prometheus says {seen}, expected {expected}")


async def next_cpu(ws) -> float:
    """The CPU figure of the next snapshot a viewer receives (other frames skipped)."""
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        frame = await receive_json(ws, within=WITHIN)
        if frame.get("type") == "metrics":
            return frame["data"]["cpu"]["usage_percent"]
    raise AssertionError("no snapshot reached the viewer")


async def send_every_second(agent, marker: list[float]) -> None:
    """Send a snapshot each second, its CPU figure whatever `marker` holds now."""
    while True:
        await agent.send(snapshot_frame(time.time(), marker[0]))
        await asyncio.sleep(1)


async def test_prometheus_reads_the_hosts_figures_and_both_workers_sockets(
    tmp_path, access_token, prometheus_binary
):
    _, agent_token = await sync_to_async(create_host)(HOST)
    await sync_to_async(watched)(HOST)
    shared = tmp_path / "prometheus-multiproc"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "METRICS_PROMETHEUS_TOKEN": TOKEN}
    sockets = []
    sender = agent = None
    with contextlib.ExitStack() as stack:
        _, first = stack.enter_context(processes.daphne(tmp_path, **env))
        _, second = stack.enter_context(processes.daphne(tmp_path, **env))
        port = free_port()
        config = prometheus_config(tmp_path / "prometheus.yml", f"127.0.0.1:{first}")
        args = [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        stack.enter_context(
            processes.running(args, processes.service_env(), tmp_path / "prom.log")
        )
        try:
            agent, _ = await connected_agent(first, agent_token)
            marker = [FIRST]
            sender = asyncio.create_task(send_every_second(agent, marker))
            for worker, count in ((first, 3), (second, 2)):
                for _ in range(count):
                    sockets.append(await open_socket(worker, access_token, HOST))
            await eventually(
                lambda: ready(port), WITHIN, "Prometheus did not become ready"
            )

            # The figure a viewer on the other worker got, and Prometheus's.
            seen = await next_cpu(sockets[-1])
            assert seen == FIRST
            await until_queried(port, f'host_cpu_usage_percent{{host="{HOST}"}}', seen)
            marker[0] = SECOND
            seen = await eventually_cpu(sockets[-1], SECOND)
            await until_queried(port, f'host_cpu_usage_percent{{host="{HOST}"}}', seen)
            await until_queried(port, f'host_online{{host="{HOST}"}}', 1)

            # Sockets of both workers, from a scrape of the first alone.
            await until_queried(port, "monitor_viewer_sockets_open", 5)
            await until_queried(port, f'monitor_viewers{{host="{HOST}"}}', 5)
            await until_queried(port, "monitor_agents_connected", 1)
            for ws in sockets[3:]:
                await ws.close()
            await until_queried(port, "monitor_viewer_sockets_open", 3)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            for ws in [*sockets, agent]:
                if ws is not None:
                    await ws.close()


async def eventually_cpu(ws, expected: float) -> float:
    """Receive snapshots until one carries `expected` (the agent's new figure)."""
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        value = await next_cpu(ws)
        if value == expected:
            return value
    raise AssertionError(f"no snapshot with CPU {expected} reached the viewer")


def scrape_open_sockets(port: int) -> float:
    """monitor_viewer_sockets_open as one scrape of the runner's port says."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "monitor_viewer_sockets_open":
            return family.samples[0].value
    raise AssertionError("no monitor_viewer_sockets_open in the scrape")


def web_workers(runner: psutil.Process) -> list[psutil.Process]:
    return [
        child
        for child in runner.children()
        if "runner.webserver" in " ".join(child.cmdline()) and child.is_running()
    ]


def worker_of(ws, workers: list[psutil.Process]) -> int:
    """The PID of the worker holding the client socket `ws`."""
    client_port = ws.local_address[1]
    for worker in workers:
        for connection in worker.net_connections("tcp"):
            if connection.raddr and connection.raddr.port == client_port:
                return worker.pid
    raise AssertionError("no worker holds the socket")


async def test_any_runner_worker_answers_for_both_and_a_dead_ones_sockets_leave(
    tmp_path, access_token
):
    port = processes.free_port()
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "2", "--interval", "1"]
    env = processes.service_env(METRICS_PROMETHEUS_TOKEN=TOKEN)
    log = tmp_path / "runner.log"
    sockets = []
    with processes.running(args, env, log) as runner:
        try:
            await eventually(
                lambda: "Host monitor is running" in log.read_text(), 60, "no banner"
            )
            supervisor = psutil.Process(runner.pid)
            workers = await eventually(
                lambda: len(web_workers(supervisor)) == 2 and web_workers(supervisor),
                WITHIN,
                "two web workers did not start",
            )
            # Sockets until both workers hold some (the kernel chooses).
            held: dict[int, list] = {worker.pid: [] for worker in workers}
            while len(sockets) < 4 or not all(held.values()):
                assert len(sockets) < 30, "the kernel gave every socket to one worker"
                ws = await open_socket(port, access_token)
                sockets.append(ws)
                held[await asyncio.to_thread(worker_of, ws, workers)].append(ws)
            for _ in range(6):  # each scrape lands on either worker
                assert await asyncio.to_thread(scrape_open_sockets, port) == len(
                    sockets
                )

            killed, kept = workers
            killed.send_signal(signal.SIGKILL)
            await eventually(
                lambda: f"(pid {killed.pid}) exited" in log.read_text(),
                WITHIN,
                "the runner did not notice the dead worker",
            )
            expected = len(held[kept.pid])
            deadline = time.monotonic() + WITHIN
            in_a_row = 0
            figure = None
            while in_a_row < 6:  # six scrapes in a row, after the restart
                assert time.monotonic() < deadline, f"{figure} open, not {expected}"
                try:
                    figure = await asyncio.to_thread(scrape_open_sockets, port)
                except (urllib.error.URLError, OSError):
                    figure = None
                in_a_row = in_a_row + 1 if figure == expected else 0
                await asyncio.sleep(0.1)
        finally:
            for ws in sockets:
                await ws.close()
