"""--fleet mode's target: the service with N hosts and their agents, watched
through the overview stream, /api/ws/fleet, by users of S distinct grant sets.

As --hosts mode's target (tests.perf.fanout.hosttarget), but the viewers are S
users, none a superuser: user k is granted the hosts whose index mod S is at most
k (set k: from N/S hosts for the first to all N for the last, all distinct), and
viewer i is user i mod S. Each viewer's frames must list exactly its set's hosts.
Every agent sends once per interval, whether or not a viewer sees its host.
"""

import asyncio
from typing import Any

from tests.perf.fanout.hosttarget import HostsTarget
from tests.perf.fanout.targets import seed_database

PATH = "/api/ws/fleet"


def set_label(index: int) -> str:
    """The name a grant set goes by in the report: set-00, set-01, ..."""
    return f"set-{index:02d}"


def build_grant_sets(hosts: list[str], count: int) -> dict[str, list[str]]:
    """`count` distinct grant sets over `hosts` (in order): set k holds the hosts
    whose index mod `count` is at most k."""
    return {
        set_label(k): [name for index, name in enumerate(hosts) if index % count <= k]
        for k in range(count)
    }


class FleetTarget(HostsTarget):
    """runservice with simulated agents, the viewers on the fleet stream."""

    name = "fleet"
    database = "fleet.sqlite3"
    log_name = "runservice-fleet.log"

    def __init__(self, *host_args: Any, grant_sets: int) -> None:
        """HostsTarget's arguments, and how many grant sets to make."""
        super().__init__(*host_args)
        self.sets = build_grant_sets(self.hosts, grant_sets)

    def make_env(self) -> dict[str, str]:
        """runservice's environment, every agent sending once per interval.

        Fleet viewers make the hosts they see live; with none (the phase measured
        without viewers) an agent would be idle and send once per
        METRICS_IDLE_INTERVAL (60 s by default), and the ingest taken off the
        window would be too small.
        """
        env = super().make_env()
        env["METRICS_IDLE_INTERVAL"] = f"{self.interval:g}"
        return env

    async def prepare(self, clients: int) -> None:
        """Create the hosts, the grant sets' users and the viewers' tokens; connect
        the agents."""
        self.tokens, host_tokens = await asyncio.to_thread(
            seed_database, self.env, clients, self.hosts, list(self.sets.values())
        )
        await self.connect_agents(host_tokens)

    def client_hosts(self, clients: int) -> list[str]:
        labels = list(self.sets)
        return [labels[index % len(labels)] for index in range(clients)]

    def grant_sets(self) -> dict[str, list[str]]:
        return self.sets

    def client_urls(self, clients: int) -> list[str]:
        base = f"ws://127.0.0.1:{self.port}{PATH}?token="
        return [base + token for token in self.tokens[:clients]]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "grant_sets": {label: len(names) for label, names in self.sets.items()},
        }
