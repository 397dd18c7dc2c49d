"""Stopping child processes: SIGTERM first, SIGKILL for those that linger."""

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterable


def stop_processes(
    processes: Iterable[subprocess.Popen],
    timeout: float,
    before_kill: Callable[[subprocess.Popen], None] | None = None,
) -> None:
    """Send SIGTERM to those still running, all at once; SIGKILL any of them still
    running `timeout` seconds later (telling `before_kill` first)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            if before_kill is not None:
                before_kill(process)
            process.kill()
            process.wait()


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop one child with SIGTERM, then SIGKILL if it does not exit in time."""
    stop_processes([process], timeout)
