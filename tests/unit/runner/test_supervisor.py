"""The supervisor with real child processes."""

import os
import sys

import pytest

from runner.supervisor import MAX_RESTARTS, Child, Supervisor, SupervisorError


def test_a_child_that_keeps_dying_stops_the_supervisor_with_a_clear_message():
    child = Child(
        "flaky", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)
    )
    with pytest.raises(SupervisorError, match=r"flaky keeps dying .* last status 3"):
        Supervisor([child]).run()
    assert len(child.restarts) == MAX_RESTARTS + 1


def test_stopping_terminates_running_children():
    sleeper = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}
    )
    supervisor = Supervisor([sleeper])
    sleeper.start()
    supervisor.stop_all()
    assert sleeper.exit_status() is not None


def test_a_child_that_exits_is_reported_by_pid_before_its_restart():
    exited = []
    child = Child(
        "brief",
        [sys.executable, "-c", "raise SystemExit(0)"],
        dict(os.environ),
        on_exit=exited.append,
    )
    child.start()
    first = child.process.pid
    child.process.wait(10)
    supervisor = Supervisor([child])
    supervisor.check_children()
    assert exited == [first]
    assert child.process.pid != first
    supervisor.stop_all()
