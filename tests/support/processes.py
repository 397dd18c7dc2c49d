"""Real child processes for tests: daphne, publish_metrics and redis-server."""

import functools
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.bounds import DAPHNE_MAX_MESSAGE_BYTES
from runner.embedded_redis import EmbeddedRedis
from runner.processes import stop_process
from tests.support.children import ROOT, free_port, wait_for_port

START_TIMEOUT = 30.0
# daphne's own limit on client messages (close 1009), as ./run and the image set it.
MAX_MESSAGE_FLAGS = ("--websocket-max-message-size", str(DAPHNE_MAX_MESSAGE_BYTES))


def database_url() -> str:
    """Return a DATABASE_URL naming the test database the test run is using."""
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or "postgres"
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    host = config.get("HOST") or "127.0.0.1"
    port = config.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{config['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process of the service, sharing this run's state."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="monitor.settings",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        METRICS_REDIS_PREFIX=settings.METRICS_REDIS_PREFIX,
        # Children must not hold the test database open when pytest-django drops it.
        DATABASE_CONN_MAX_AGE="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def run_to_end(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command of the project to completion and capture its output."""
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def descriptor_limit(count: int) -> Callable[[], None]:
    """A preexec_fn giving a child process at most `count` open file descriptors."""

    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))

    return limit


@contextmanager
def running(
    args: list[str],
    env: dict[str, str],
    log: Path,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator:
    """Run a child process with output to `log`; always stop it on exit."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    try:
        yield process
    finally:
        stop_process(process)


@functools.cache
def collect_static() -> None:
    """Collect the static files once per test run, as ./run does before starting its
    web workers, which refuse to start without them.

    Run as the service runs it (monitor.settings), not in this process, whose test
    settings swap the manifest storage for the plain one.
    """
    args = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    result = run_to_end(args, service_env())
    assert result.returncode == 0, f"collectstatic failed:\n{result.stderr}"


@contextmanager
def daphne(
    tmp_path: Path,
    *flags: str,
    port: int | None = None,
    descriptors: int | None = None,
    **env: str,
) -> Iterator[tuple[subprocess.Popen, int]]:
    """Serve the project with one real daphne process (on a free port by default,
    with at most `descriptors` open files if given)."""
    collect_static()
    port = port or free_port()
    args = [sys.executable, "-m", "runner.webserver", "-b", "127.0.0.1"]
    args += ["-p", str(port), *flags, "monitor.asgi:application"]
    log = tmp_path / f"daphne-{port}.log"
    limit = descriptor_limit(descriptors) if descriptors else None
    with running(args, service_env(**env), log, limit) as proc:
        wait_for_port(port, proc, START_TIMEOUT)
        yield proc, port


def publisher_args(*flags: str) -> list[str]:
    """Command line of `manage.py publish_metrics` with extra flags."""
    return [sys.executable, "manage.py", "publish_metrics", *flags]


@contextmanager
def publisher(
    tmp_path: Path, *flags: str, log_name: str = "publisher.log", **env: str
) -> Iterator[subprocess.Popen]:
    """Run `manage.py publish_metrics` with the given flags, logging to `log_name`."""
    log = tmp_path / log_name
    with running(publisher_args(*flags), service_env(**env), log) as process:
        yield process


@contextmanager
def redis_server(tmp_path: Path, port: int) -> Iterator[EmbeddedRedis]:
    """Run a private, disposable redis-server on the given TCP port."""
    server = EmbeddedRedis(tmp_path / f"redis-{port}", port)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def service_on_own_redis(
    tmp_path: Path, interval: str
) -> Iterator[tuple[EmbeddedRedis, int, subprocess.Popen]]:
    """A private redis-server, with a daphne and a publisher using it: the test may
    stop and start Redis under the service. Yields Redis, the web port, the
    publisher."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with (
        redis_server(tmp_path, port) as server,
        daphne(tmp_path, REDIS_URL=url) as (_, web_port),
        publisher(tmp_path, "--interval", interval, REDIS_URL=url) as process,
    ):
        yield server, web_port, process


def wait_for_banner(log: Path, runner: subprocess.Popen, within: float = 60) -> None:
    """Wait until the runner (`runservice`, `./run`) logged its banner, the sign
    that everything it starts is up; fail if it exits first or takes longer."""
    deadline = time.monotonic() + within
    while "Ctrl-C stops everything" not in log.read_text():
        assert runner.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no banner"
        time.sleep(0.1)
