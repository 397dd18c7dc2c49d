"""Run the service's processes, restart the ones that die, stop them all together."""

import logging
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runner.processes import stop_processes

logger = logging.getLogger(__name__)

# A child that dies this often within RESTART_WINDOW seconds is not restarted again.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
POLL = 0.2
STOP_TIMEOUT = 10.0


class SupervisorError(Exception):
    """A child keeps dying; the supervisor stopped everything."""


@dataclass
class Child:
    """A long-running process the supervisor keeps alive."""

    name: str
    args: Sequence[str]
    env: dict[str, str]
    pass_fds: Sequence[int] = ()
    # Stopped after the others (Redis, which they use until they exit).
    stop_last: bool = False
    process: subprocess.Popen | None = None
    restarts: deque = field(default_factory=deque)
    # Told the PID of the process when it has exited, before it is restarted.
    on_exit: Callable[[int], None] | None = None

    def start(self) -> None:
        """Start (or restart) the process."""
        # A process group of its own: Ctrl-C reaches only the supervisor, which then
        # stops the children in order (Redis last).
        self.process = subprocess.Popen(  # noqa: S603 - arguments are our own
            list(self.args),
            env=self.env,
            pass_fds=tuple(self.pass_fds),
            process_group=0,
        )
        logger.info("Started %s (pid %d)", self.name, self.process.pid)

    def exit_status(self) -> int | None:
        """The status the process exited with, or None while it runs."""
        return None if self.process is None else self.process.poll()


class Supervisor:
    """Keeps children running until asked to stop, or until one keeps dying."""

    def __init__(
        self, children: Sequence[Child], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.children = list(children)
        self.clock = clock
        self.stopping = False

    def request_stop(self, signum: int = 0, frame: object = None) -> None:
        """Ask the supervision loop to stop (a signal handler)."""
        self.stopping = True

    def run(self) -> None:
        """Start every child and supervise until SIGINT/SIGTERM; then stop them."""
        previous = {
            signum: signal.signal(signum, self.request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            for child in self.children:
                if child.process is None:
                    child.start()
            while not self.stopping:
                self.check_children()
                time.sleep(POLL)
        finally:
            self.stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def check_children(self) -> None:
        """Restart children that exited; raise SupervisorError if one keeps dying."""
        for child in self.children:
            status = child.exit_status()
            if status is None or self.stopping:
                continue
            now = self.clock()
            child.restarts.append(now)
            while child.restarts and child.restarts[0] < now - RESTART_WINDOW:
                child.restarts.popleft()
            if len(child.restarts) > MAX_RESTARTS:
                raise SupervisorError(
                    f"{child.name} keeps dying ({len(child.restarts)} exits within "
                    f"{RESTART_WINDOW:g} s, last status {status}); see its output."
                )
            logger.warning(
                "%s (pid %d) exited with status %s; restarting",
                child.name,
                child.process.pid,
                status,
            )
            if child.on_exit is not None:
                child.on_exit(child.process.pid)
            child.start()

    def stop_all(self) -> None:
        """SIGTERM the children together (stop_last ones after the rest), then
        SIGKILL any that linger."""
        names = {child.process: child.name for child in self.children}

        def warn(process: subprocess.Popen) -> None:
            logger.warning("%s did not stop in time; killing it", names[process])

        first = [child for child in self.children if not child.stop_last]
        last = [child for child in self.children if child.stop_last]
        for group in (first, last):
            running = [child.process for child in group if child.process is not None]
            stop_processes(running, STOP_TIMEOUT, before_kill=warn)
