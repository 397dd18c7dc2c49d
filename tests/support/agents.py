"""The real agent (`monitor-agent`, run as `python -m agent` from this checkout) as
a child process for tests; no Django."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from runner.processes import stop_process
from tests.support.children import ROOT


@dataclass
class AgentProcess:
    """A running agent and the file its log goes to."""

    process: subprocess.Popen
    log: Path

    def lines(self, containing: str = "") -> list[str]:
        """The agent's log lines so far, those containing a text if given."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if containing in line]


def agent_env(**overrides: str) -> dict[str, str]:
    """The environment of an agent: this one's, without a token of its own."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_AGENT_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@asynccontextmanager
async def running_agent(
    log: Path,
    *flags: str,
    command: tuple[str, ...] = (sys.executable, "-m", "agent"),
    env: dict[str, str] | None = None,
) -> AsyncIterator[AgentProcess]:
    """Run the agent with `flags`, its output in `log`; stop it by PID on exit,
    leaving this event loop free meanwhile (a stub server in it may have to answer
    the agent's closing handshake)."""
    process = start_agent(log, [*command, *flags], env)
    try:
        yield AgentProcess(process, log)
    finally:
        await asyncio.to_thread(stop_process, process)


def start_agent(
    log: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start the agent with output to `log`; the caller stops it."""
    with log.open("ab") as output:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env if env is not None else agent_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
