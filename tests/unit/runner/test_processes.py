"""Stopping children: SIGTERM first, SIGKILL only for those that linger."""

import subprocess
import sys
import time

from runner.processes import stop_process, stop_processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM, and says so once it does.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)",
]


def test_children_that_obey_sigterm_are_not_killed():
    children = [subprocess.Popen(SLEEPER) for _ in range(3)]
    killed = []
    stop_processes(children, timeout=10, before_kill=killed.append)
    assert [child.returncode for child in children] == [-15] * 3
    assert killed == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout():
    child = subprocess.Popen(STUBBORN, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    killed = []
    started = time.monotonic()
    stop_processes([child], timeout=0.5, before_kill=killed.append)
    assert 0.5 <= time.monotonic() - started < 5
    assert child.returncode == -9
    assert killed == [child]
    child.stdout.close()


def test_a_child_that_has_exited_is_left_alone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    stop_process(child)
    assert child.returncode == 0
