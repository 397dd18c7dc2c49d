"""--hosts mode's target: the service with N hosts, each fed by a simulated agent.

`manage.py runservice` as for the single-host target (a database, log and Redis
prefix of its own for this target), N hosts created in its database, one simulated
agent per host (tests.perf.fanout.agents, in a process of its own) and the viewers
spread evenly over the hosts: viewer i watches host i mod N.
"""

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from tests.perf.fanout import FanoutError
from tests.perf.fanout.agents import run_agent_process
from tests.perf.fanout.broadcasts import Broadcast
from tests.perf.fanout.clients import ClientPool
from tests.perf.fanout.targets import ServiceTarget, seed_database

logger = logging.getLogger(__name__)

SENT_POLL = 0.2
AGENTS_TIMEOUT = 60.0


def host_names(count: int) -> list[str]:
    """The run's host names: fanout-000, fanout-001, ..."""
    return [f"fanout-{index:03d}" for index in range(count)]


class HostsTarget(ServiceTarget):
    """runservice with --hosts simulated agents and the viewers spread over them."""

    name = "hosts"
    database = "hosts.sqlite3"
    log_name = "runservice-hosts.log"

    def __init__(
        self,
        workdir: Path,
        workers: int,
        interval: float,
        redis_url: str,
        prefix: str,
        hosts: int,
        payload: str,
        connect_timeout: float,
    ) -> None:
        super().__init__(workdir, workers, interval, redis_url, prefix)
        self.hosts = host_names(hosts)
        self.data = json.dumps(json.loads(payload)["data"], separators=(",", ":"))
        self.connect_timeout = connect_timeout
        self.fleet: ClientPool | None = None
        # Per host, what its agent sent: timestamp and the wall time of the send.
        self.sent: dict[str, list[Broadcast]] = {name: [] for name in self.hosts}
        self.agents: dict[str, Any] = {}
        self.closed_agents: dict[str, Any] = {}
        self.agent_errors: dict[str, list[str]] = {}
        # The wall time at which the latest poll of the agents' process began: what
        # was sent before it is in self.sent.
        self.polled_at = 0.0

    async def prepare(self, clients: int) -> None:
        """Create the hosts and the viewers' tokens; connect the agents."""
        self.tokens, host_tokens = await asyncio.to_thread(
            seed_database, self.env, clients, self.hosts
        )
        await self.connect_agents(host_tokens)

    async def connect_agents(self, host_tokens: dict[str, str]) -> None:
        """Start the agents' process and connect one agent per host; follow them."""
        self.fleet = ClientPool(1, entry=run_agent_process)
        await self.fleet.ping()
        logger.info("hosts: connecting %d agents", len(self.hosts))
        [self.agents] = await self.fleet.request_all(
            "connect",
            [
                {
                    "server": f"ws://127.0.0.1:{self.port}",
                    "tokens": host_tokens,
                    "interval": self.interval,
                    "data": self.data,
                    "open_timeout": self.connect_timeout,
                }
            ],
            self.connect_timeout + AGENTS_TIMEOUT,
        )
        if self.agents["connected"] != len(self.hosts):
            raise FanoutError(
                f"hosts: {self.agents['connected']} of {len(self.hosts)} agents "
                f"connected (failures: {self.agents['failures']}; log: {self.log})"
            )
        self.tracker = asyncio.create_task(self.track_agents())

    async def track_agents(self) -> None:
        """Follow what the agents sent, and which of them the server closed."""
        while True:
            since = {name: len(self.sent[name]) for name in self.hosts}
            began = time.time()
            try:
                [report] = await self.fleet.request_all("sent", [since], AGENTS_TIMEOUT)
            except FanoutError as error:  # the wait loops time out and say so
                logger.warning("hosts: the agents' process failed: %s", error)
                return
            for name, entries in report["sent"].items():
                self.sent[name] += [Broadcast(key, at) for key, at in entries]
            for name, code in report["closed"].items():
                if name not in self.closed_agents:
                    logger.warning("hosts: %s's agent closed: %s", name, code)
                self.closed_agents[name] = code
            self.agent_errors = report["errors"]
            self.polled_at = began
            await asyncio.sleep(SENT_POLL)

    async def sent_until(self, moment: float) -> dict[str, int]:
        """Per host, how many snapshots its agent sent before wall time `moment`
        (waiting for a poll of the agents that began after it)."""
        deadline = time.monotonic() + AGENTS_TIMEOUT
        while self.polled_at <= moment:
            if self.tracker is None or self.tracker.done():
                raise FanoutError("hosts: the agents' process stopped answering")
            if time.monotonic() > deadline:
                raise FanoutError("hosts: the agents' process did not answer")
            await asyncio.sleep(SENT_POLL / 4)
        return {
            name: sum(1 for sent in entries if sent.published_at < moment)
            for name, entries in self.sent.items()
        }

    def client_hosts(self, clients: int) -> list[str]:
        return [self.hosts[index % len(self.hosts)] for index in range(clients)]

    def client_urls(self, clients: int) -> list[str]:
        base = f"ws://127.0.0.1:{self.port}/api/ws/metrics"
        tokens = self.tokens[:clients]
        hosts = self.client_hosts(len(tokens))
        return [
            f"{base}?host={host}&token={token}"
            for host, token in zip(hosts, tokens, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            # An agent's frame: the data under a 24-character timestamp.
            "payload_bytes": len(
                f'{{"type":"metrics","timestamp":"{"T" * 24}","data":{self.data}}}'
            ),
            "hosts": len(self.hosts),
            "agents": self.agents,
            "agents_closed_by_server": self.closed_agents,
            "agent_errors": self.agent_errors,
        }

    async def stop(self) -> None:
        if self.tracker is not None:
            self.tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.tracker
            self.tracker = None
        if self.fleet is not None:
            await self.fleet.close()
        await super().stop()
