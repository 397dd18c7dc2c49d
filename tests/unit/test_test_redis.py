"""The test suite's own choice of Redis, including on a machine with no Redis at all."""

import os
import socket
import subprocess
import sys

import psutil

from tests.support.processes import ROOT, free_port, service_env
from tests.support.redis_server import ensure_test_redis

# Runs in a child: no REDIS_URL, nothing on the default port (a free one stands in for
# 6379), so the suite must start an embedded server, use it, and stop it at exit.
PROBE = """
import os, sys, redis
from tests.support.redis_server import ensure_test_redis
ensure_test_redis(default=("127.0.0.1", int(sys.argv[1])))
client = redis.Redis.from_url(os.environ["REDIS_URL"])
print(os.environ["REDIS_URL"], client.ping(), client.info()["process_id"])
"""


def test_without_any_redis_the_suite_starts_an_embedded_one_and_leaves_nothing(
    db, tmp_path
):
    env = service_env(TMPDIR=str(tmp_path))
    env.pop("REDIS_URL")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    url, pong, pid = result.stdout.split()
    assert url.startswith("unix://")
    assert pong == "True"
    alive = (
        psutil.pid_exists(int(pid)) and psutil.Process(int(pid)).status() != "zombie"
    )
    assert not alive, "the embedded redis-server outlived the test run"
    assert list(tmp_path.iterdir()) == [], "its directory (redis.log) was left behind"


def test_a_redis_on_the_default_port_is_used_as_it_is(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ensure_test_redis(default=listener.getsockname())
    assert "REDIS_URL" not in os.environ


def test_redis_url_when_set_is_kept(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://192.0.2.1:6379/3")
    ensure_test_redis(default=("127.0.0.1", free_port()))
    assert os.environ["REDIS_URL"] == "redis://192.0.2.1:6379/3"
