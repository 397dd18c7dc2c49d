"""`manage.py runservice` from a clean state: everything up, a worker restarted,
Ctrl-C leaves no process behind."""

import asyncio
import contextlib
import json
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from runner.addresses import ANY_ADDRESS, is_loopback, machine_addresses
from tests.support import processes
from tests.support.clients import close_code, open_socket, receive_json
from tests.support.waiting import eventually


def login(port: int, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access"]


async def printed_password(log: Path) -> str:
    """Wait for the runner's banner; return the administrator's password it printed."""
    banner = await eventually(
        lambda: "Host monitor is running" in (text := log.read_text()) and text,
        60,
        "no banner",
    )
    return re.search(r"password '([^']+)'", banner).group(1)


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
        password = await printed_password(log)
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


# --- start-up checks (REDIS_URL, DATABASE_URL) ------------------------------------


def start_and_fail(env: dict[str, str]):
    """Run the runner with one worker on a free port, to the end (a failed check)."""
    args = [sys.executable, "manage.py", "runservice", "--workers", "1"]
    args += ["--port", str(processes.free_port())]
    return processes.run_to_end(args, env)


def test_unreachable_redis_stops_the_runner_naming_redis_url(clean_environment):
    port = processes.free_port()
    env = {**clean_environment, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"}
    started = time.monotonic()
    result = start_and_fail(env)
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert f"REDIS_URL=redis://:***@127.0.0.1:{port}/0" in result.stderr
    assert "within 10 s" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "is running" not in result.stdout
    assert "Traceback" not in result.stderr


def test_sentinels_that_name_no_master_stop_the_runner_naming_redis_url(
    clean_environment,
):
    port = processes.free_port()
    url = f"redis+sentinel://:hunter2@127.0.0.1:{port}/mymaster/0?sentinel_password=s3"
    env = {**clean_environment, "REDIS_URL": url}
    result = start_and_fail(env)
    assert result.returncode != 0
    shown = f"redis+sentinel://:***@127.0.0.1:{port}/mymaster/0?sentinel_password=***"
    assert f"REDIS_URL={shown} within 10 s" in result.stderr
    assert f"no Sentinel names a live master: 127.0.0.1:{port}: " in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "embedded Redis" not in result.stdout
    assert "Traceback" not in result.stderr


async def test_runner_on_sentinels_starts_no_redis_of_its_own_and_streams(
    tmp_path, clean_environment, sentinel_cluster
):
    port = processes.free_port()
    log = tmp_path / "runner.log"
    env = {**clean_environment, "REDIS_URL": sentinel_cluster.url()}
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "1", "--interval", "1"]
    with processes.running(args, env, log) as runner:
        password = await printed_password(log)
        token = await asyncio.to_thread(login, port, "admin", password)
        ws = await open_socket(port, token)
        assert (await receive_json(ws, within=5))["type"] == "metrics"
        await ws.close()
        children = psutil.Process(runner.pid).children(recursive=True)
        assert not any("redis" in child.name() for child in children)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 0
    assert "embedded Redis" not in log.read_text()
    latest = sentinel_cluster.server_client(sentinel_cluster.master())
    host = settings.METRICS_HOST_NAME
    assert latest.get(f"runner-test:host:{host}:latest") is not None


def test_unopenable_database_stops_the_runner_naming_database_url(
    tmp_path, clean_environment
):
    url = f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}"
    env = {**clean_environment, "DATABASE_URL": url}
    result = start_and_fail(env)
    assert result.returncode != 0
    assert f"DATABASE_URL={url}" in result.stderr
    assert "is running" not in result.stdout
    assert "Traceback" not in result.stderr


# --- who may reach it: --host and DJANGO_ALLOWED_HOSTS --------------------------


def outside_address() -> str:
    """An address of this machine that is not loopback (skip if there is none)."""
    found = [a for a in machine_addresses() if not is_loopback(a)]
    if not found:
        pytest.skip("this machine has no address but loopback")
    return found[0]


def http_status(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@contextmanager
def running_service(tmp_path, env, *flags: str):
    """runservice with one worker on a free port; yields (port, its log)."""
    port = processes.free_port()
    log = tmp_path / "runner.log"
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "1", *flags]
    with processes.running(args, env, log) as runner:
        try:
            processes.wait_for_banner(log, runner)
            yield port, log
        finally:
            runner.send_signal(signal.SIGINT)
            runner.wait(30)


def test_every_address_is_served_and_printed_when_allowed_hosts_is_unset(
    tmp_path, clean_environment
):
    address = outside_address()
    env = dict(clean_environment)
    env.pop("DJANGO_ALLOWED_HOSTS")
    with running_service(tmp_path, env, "--host", ANY_ADDRESS) as (port, log):
        assert http_status(f"http://{address}:{port}/healthz") == 200
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        banner = log.read_text()
    assert f"http://{address}:{port}/" in banner
    assert f"http://{socket.gethostname()}:{port}/" in banner


def test_set_allowed_hosts_is_respected_and_the_banner_gives_the_value_to_set(
    tmp_path, clean_environment
):
    address = outside_address()
    env = {**clean_environment, "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    with running_service(tmp_path, env, "--host", ANY_ADDRESS) as (port, log):
        assert http_status(f"http://{address}:{port}/healthz") == 400
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        banner = log.read_text()
    wanted = f"DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost,{address}"
    assert wanted in banner
    assert f"http://{address}:{port}/" in banner


def test_a_disallowed_host_gets_400_and_one_log_line_without_traceback(
    tmp_path, clean_environment
):
    with running_service(tmp_path, clean_environment) as (port, log):
        status = http_status(f"http://127.0.0.1:{port}/healthz", "evil.example")
        assert status == 400
        time.sleep(0.5)  # the worker writes its line after the answer
    output = log.read_text()
    lines = [line for line in output.splitlines() if "evil.example" in line]
    assert len(lines) == 1, output
    assert "DJANGO_ALLOWED_HOSTS" in lines[0]
    assert "Traceback" not in output


# --- the banner's login hints -----------------------------------------------------


def test_banner_points_above_only_when_it_printed_a_password(
    tmp_path, clean_environment
):
    with running_service(tmp_path, clean_environment) as (_, log):
        first = log.read_text()
    log.unlink()
    with running_service(tmp_path, clean_environment) as (_, log):
        second = log.read_text()
    assert "password '" in first
    assert "administrator above" in first
    assert "password '" not in second
    assert "above" not in second
    assert "./run manage changepassword admin" in second


# --- tokens in query strings never reach a log ----------------------------------


def redis_log_of(runner_pid: int) -> Path:
    """The embedded Redis's log file, in the directory it runs in."""
    for child in psutil.Process(runner_pid).children(recursive=True):
        if "redis-server" in child.name():
            return Path(child.cwd()) / "redis.log"
    raise AssertionError("no embedded redis-server among the runner's children")


def get_quietly(url: str) -> None:
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=10).close()


async def test_no_log_of_the_run_contains_a_token_sent_in_a_query_string(
    tmp_path, clean_environment
):
    port = processes.free_port()
    log = tmp_path / "runner.log"
    args = [sys.executable, "manage.py", "runservice", "--port", str(port)]
    args += ["--workers", "1", "--interval", "1"]
    with processes.running(args, clean_environment, log) as runner:
        await asyncio.to_thread(processes.wait_for_banner, log, runner)
        password = re.search(r"password '([^']+)'", log.read_text()).group(1)
        token = await asyncio.to_thread(login, port, "admin", password)
        base = f"http://127.0.0.1:{port}"
        for path in (
            f"/api/metrics/history?seconds=60&token={token}",
            f"/?token={token}",
            f"/admin/?token={token}",
            f"/nowhere?token={token}",
        ):
            await asyncio.to_thread(get_quietly, base + path)
        ws = await open_socket(port, token)
        assert (await receive_json(ws, within=5))["type"] == "metrics"
        await ws.close()
        refused = await open_socket(port, token[:-4] + "AAAA")
        await close_code(refused)
        redis_log = redis_log_of(runner.pid).read_text()
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 0
    output = log.read_text()
    assert '"GET /api/metrics/history"' in output, "the access log was not written"
    assert "WSCONNECT /api/ws/metrics" in output
    for text in (output, redis_log):
        assert token not in text
        assert token[:-4] not in text
        assert "eyJ" not in text
