"""The files the service creates are readable by their owner only, whichever command
creates them, and looser ones are tightened at start: checked by their modes, and by
trying to read them as another user (`nobody`) where the test runs as root."""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.support import processes
from tests.support.waiting import eventually

OTHERS = stat.S_IRWXG | stat.S_IRWXO
AS_ANOTHER_USER = ["runuser", "-u", "nobody", "--"]


def can_switch_user() -> bool:
    return os.geteuid() == 0 and shutil.which("runuser") is not None


@pytest.fixture
def shared_directory():
    """A directory everyone may enter and list, as a checkout usually is (pytest's
    own temporary directories are the owner's only, which would hide the files)."""
    directory = Path(tempfile.mkdtemp(prefix="monitor-files-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(path: Path) -> None:
    """Nobody but the owner has any permission on `path`, and `nobody` cannot
    read it."""
    assert mode(path) & OTHERS == 0, f"{path} has mode {mode(path):03o}"
    if can_switch_user() and path.is_file():
        result = subprocess.run(
            [*AS_ANOTHER_USER, "cat", str(path)], capture_output=True, timeout=30
        )
        assert result.returncode != 0
        assert b"Permission denied" in result.stderr


def manage(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = processes.service_env(DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}")
    return processes.run_to_end([sys.executable, "manage.py", *args], env)


def test_another_user_can_read_a_world_readable_file_here(shared_directory):
    # The control for the checks below: the directory does not hide its files.
    if not can_switch_user():
        pytest.skip("needs root and runuser to act as another user")
    readable = shared_directory / "readable"
    readable.write_text("anyone")
    readable.chmod(0o644)
    result = subprocess.run(
        [*AS_ANOTHER_USER, "cat", str(readable)], capture_output=True, timeout=30
    )
    assert result.stdout == b"anyone"


def test_migrate_creates_a_database_only_its_owner_can_read(shared_directory):
    result = manage(shared_directory, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    database = shared_directory / "db.sqlite3"
    assert_private(database)
    for journal in shared_directory.glob("db.sqlite3-*"):
        assert_private(journal)
    # Nothing to tighten in a database just made: no warning about it.
    assert "Tightened" not in result.stderr


def test_a_readable_database_is_tightened_at_start_with_a_log_line(shared_directory):
    assert manage(shared_directory, "migrate", "--noinput").returncode == 0
    database = shared_directory / "db.sqlite3"
    database.chmod(0o644)
    result = manage(shared_directory, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    assert re.search(
        rf"Tightened {re.escape(str(database))} from mode 644 to 600", result.stderr
    )
    assert_private(database)


def redis_directory(runner: psutil.Process) -> Path | None:
    """The embedded redis-server's --dir (its working directory: it rewrites its
    command line), once the runner has started it."""
    for child in runner.children(recursive=True):
        if "redis" in child.name():
            return Path(child.cwd())
    return None


def checkout_copy(directory: Path) -> Path:
    """The project's files (those git tracks or would) in `directory`, sharing this
    checkout's .venv."""
    copy = directory / "checkout"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=processes.ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = processes.ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (copy / ".venv").symlink_to((processes.ROOT / ".venv").resolve())
    for path in [copy, *copy.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return copy


async def test_run_keeps_the_database_key_and_redis_private(shared_directory):
    checkout = checkout_copy(shared_directory)
    key = checkout / ".secret_key"
    key.write_text("a-key-someone-left-readable-" + "x" * 40 + "\n")
    key.chmod(0o644)
    env = processes.service_env()
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name)
    port = processes.free_port()
    log = shared_directory / "run.log"
    # ./run works from its own directory, wherever it is started.
    args = [str(checkout / "run"), "--port", str(port), "--workers", "1"]
    with processes.running(args, env, log) as run:
        await eventually(
            lambda: "Host monitor is running" in log.read_text(), 90, "no banner"
        )
        redis = redis_directory(psutil.Process(run.pid))
        assert redis is not None
        assert "Tightened .secret_key" in log.read_text()
        assert_private(key)
        assert_private(checkout / "db.sqlite3")
        assert_private(redis)
        for path in redis.iterdir():
            assert_private(path)
        assert {path.name for path in redis.iterdir()} >= {"redis.sock", "redis.log"}
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 0
