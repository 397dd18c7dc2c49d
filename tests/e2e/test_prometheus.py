"""A real Prometheus server scrapes one of two web workers that share a
PROMETHEUS_MULTIPROC_DIR (as ./run's do), and answers through its query API: a
host's CPU gauge is the figure its viewers get over the WebSocket, and the open
sockets are those the test holds on both workers."""

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from metrics.hosts import create_host
from tests.support import processes
from tests.support.children import free_port
from tests.support.clients import open_socket, receive_json
from tests.support.fake_agents import connected_agent, snapshot_frame
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
