"""The ./run script as a new user types it: its help, its errors, and its hints."""

import asyncio
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tests.support import processes
from tests.support.clients import close_frame
from tests.support.fake_agents import connected_agent

DJANGO_OPTIONS = ("--settings", "--pythonpath", "--traceback", "--no-color")
NEW_PASSWORD = "a-new-and-long-password-7"


@pytest.fixture
def user_environment(tmp_path):
    """A new user's shell: no secret key (./run keeps one in .secret_key), no Redis,
    a new database, and the test run's virtualenv (so nothing is installed)."""
    env = processes.service_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        METRICS_REDIS_PREFIX=f"run-script-{os.getpid()}",
        VENV=sys.prefix,
    )
    for name in (
        "DJANGO_SECRET_KEY",
        "REDIS_URL",
        "DJANGO_SUPERUSER_USERNAME",
        "DJANGO_SUPERUSER_PASSWORD",
    ):
        env.pop(name, None)
    return env


def run_script(env, *args: str) -> subprocess.CompletedProcess:
    return processes.run_to_end(["./run", *args], env)


def test_help_shows_only_the_options_of_run(user_environment):
    result = run_script(user_environment, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ./run ")
    for flag in ("--host", "--port", "--workers", "--interval", "./run manage"):
        assert flag in result.stdout
    for flag in (*DJANGO_OPTIONS, "--verbosity", "--skip-checks", "--run-script"):
        assert flag not in result.stdout


@pytest.mark.parametrize(
    "args", [["--workers", "0"], ["--port", "http"], ["--colour"], ["serve"]]
)
def test_argument_errors_show_only_the_options_of_run(user_environment, args):
    result = run_script(user_environment, *args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ./run ")
    assert "./run: error:" in result.stderr
    for flag in DJANGO_OPTIONS:
        assert flag not in result.stderr


def answer_prompts(args: list[str], env, answers: dict[str, str]) -> tuple[int, str]:
    """Run a command on a terminal of its own, answering its prompts; return its
    exit status and what it wrote."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the terminal is its own now
        os.chdir(processes.ROOT)
        os.execvpe(args[0], args, env)  # noqa: S606 - the script under test
    output, pending = "", dict(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(terminal, 1024).decode(errors="replace")
            except OSError:  # the child closed the terminal: it is done
                break
            if not chunk:
                break
            output += chunk
            for prompt in list(pending):
                if output.rstrip().endswith(prompt):
                    os.write(terminal, (pending.pop(prompt) + "\n").encode())
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status), output


def password_works(env, username: str, password: str) -> bool:
    check = (
        "import sys; from django.contrib.auth import authenticate; "
        f"sys.exit(0 if authenticate(username={username!r}, password={password!r}) "
        "else 1)"
    )
    args = ["./run", "manage", "shell", "-c", check]
    return processes.run_to_end(args, env).returncode == 0


def test_the_printed_password_hint_works_exactly_as_printed(tmp_path, user_environment):
    port = processes.free_port()
    log = tmp_path / "run.log"
    args = ["./run", "--workers", "1", "--port", str(port)]
    with processes.running(args, user_environment, log) as runner:
        processes.wait_for_banner(log, runner, within=90)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 0
    banner = log.read_text()
    hint = re.search(r"Forgot the password\? (.+)", banner).group(1).strip()
    assert hint == "./run manage changepassword admin"

    status, output = answer_prompts(
        shlex.split(hint),
        user_environment,
        {"Password:": NEW_PASSWORD, "Password (again):": NEW_PASSWORD},
    )

    assert status == 0, output
    assert "Password changed successfully for user 'admin'" in output
    assert password_works(user_environment, "admin", NEW_PASSWORD)


async def test_run_manage_reaches_the_redis_that_run_embeds(tmp_path, user_environment):
    port = processes.free_port()
    log = tmp_path / "run.log"
    args = ["./run", "--workers", "1", "--port", str(port), "--interval", "1"]
    with processes.running(args, user_environment, log) as runner:
        await asyncio.to_thread(processes.wait_for_banner, log, runner, 90)
        added = run_script(user_environment, "manage", "hosts", "add", "db-9")
        assert added.returncode == 0, added.stderr
        assert "Could not tell" not in added.stderr
        token = added.stdout.splitlines()[-1]
        agent, hello = await connected_agent(port, token)
        assert hello["host"] == "db-9"
        assert hello["interval"] == 1.0  # ./run --interval is every process's
        listed = run_script(user_environment, "manage", "hosts", "list")
        assert re.search(r"^db-9\s+enabled\s+agent\s+yes\b", listed.stdout, re.M), (
            listed.stdout
        )
        rotated_at = time.monotonic()
        rotated = run_script(user_environment, "manage", "hosts", "rotate", "db-9")
        assert rotated.returncode == 0, rotated.stderr
        assert await close_frame(agent, within=5) == (4001, "invalid host token")
        assert time.monotonic() - rotated_at < 2 + 3  # the command's own start-up
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 0
    assert not (processes.ROOT / ".redis_url").exists()
