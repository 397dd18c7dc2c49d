"""`manage.py runservice` from a clean state: everything up, a worker restarted,
Ctrl-C leaves no process behind."""

import asyncio
import json
import re
import signal
import sys
import urllib.request

import psutil
import pytest

from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.waiting import eventually


def login(port: int, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access"]


def daphne_children(runner: psutil.Process) -> list[psutil.Process]:
    return [
        child
        for child in runner.children()
        if "runner.webserver" in " ".join(child.cmdline()) and child.is_running()
    ]


@pytest.fixture
def clean_environment(tmp_path):
    """A new user's environment: no REDIS_URL, no admin variables, a new database."""
    env = processes.service_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        METRICS_REDIS_PREFIX="runner-test",
    )
    for name in ("REDIS_URL", "DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"):
        env.pop(name, None)
    return env


async def test_runner_serves_restarts_workers_and_stops_cleanly(
    tmp_path, clean_environment
):
    port = processes.free_port()
    log = tmp_path / "runner.log"
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "2", "--interval", "1"]
    with processes.running(args, clean_environment, log) as runner:
        await eventually(
            lambda: "Host monitor is running" in log.read_text(), 60, "no banner"
        )
        password = re.search(r"password '([^']+)'", log.read_text()).group(1)
        supervisor = psutil.Process(runner.pid)
        workers = await eventually(
            lambda: (
                len(daphne_children(supervisor)) == 2 and daphne_children(supervisor)
            ),
            15,
            "two daphne workers did not start",
        )
        descendants = supervisor.children(recursive=True)
        assert any("redis-server" in p.name() for p in descendants)

        token = await asyncio.to_thread(login, port, "admin", password)
        ws = await open_socket(port, token)
        assert (await receive_json(ws, within=5))["type"] == "metrics"

        workers[0].send_signal(signal.SIGKILL)
        await eventually(
            lambda: f"(pid {workers[0].pid}) exited" in log.read_text(),
            10,
            "the runner did not notice the dead worker",
        )
        await eventually(
            lambda: len(daphne_children(supervisor)) == 2,
            15,
            "the dead worker was not replaced",
        )
        ws2 = await open_socket(port, token)
        assert (await receive_json(ws2, within=5))["type"] == "metrics"
        await ws2.close()
        await ws.close()

        descendants = supervisor.children(recursive=True)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 0
    _, alive = psutil.wait_procs(descendants, timeout=5)
    assert alive == []
    output = log.read_text()
    assert "restarting" in output
    assert "Stopped." in output


async def test_closing_the_terminal_stops_everything(tmp_path, clean_environment):
    port = processes.free_port()
    log = tmp_path / "runner.log"
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "1"]
    with processes.running(args, clean_environment, log) as runner:
        await eventually(
            lambda: "Host monitor is running" in log.read_text(), 60, "no banner"
        )
        supervisor = psutil.Process(runner.pid)
        descendants = await eventually(
            lambda: len(supervisor.children()) >= 3 and supervisor.children(),
            15,
            "redis, a worker and the publisher did not all start",
        )
        runner.send_signal(signal.SIGHUP)
        assert runner.wait(30) == 0
    _, alive = psutil.wait_procs(descendants, timeout=5)
    assert alive == []


def test_runner_refuses_a_port_in_use(tmp_path, clean_environment):
    with processes.daphne(tmp_path) as (_, port):
        args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
        result = processes.run_to_end(args, clean_environment)
    assert result.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flags",
    [["--workers", "0"], ["--workers", "many"], ["--port", "70000"], ["--host", "::1"]],
)
def test_runner_refuses_bad_flags(clean_environment, flags):
    args = [sys.executable, "manage.py", "runservice", *flags]
    result = processes.run_to_end(args, clean_environment)
    assert result.returncode != 0
    assert flags[0] in result.stderr
    assert "Traceback" not in result.stderr
