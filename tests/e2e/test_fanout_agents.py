"""The load tool's simulated agents (--hosts mode) against the agent socket's stand-in.

tests/support/agent_stub.py speaks docs/agent-protocol.md from the server's side;
the agents must speak it as monitor-agent does: bearer token, hello first, one
snapshot per interval on schedule, the cadence of config frames followed.
"""

import asyncio
import itertools
import json

import pytest

from tests.perf.fanout.agents import run_agent_process
from tests.perf.fanout.clients import ClientPool
from tests.perf.fanout.targets import build_payload
from tests.support.agent_stub import AgentStub

TOKENS = {"token-of-alpha-0123456789": "alpha", "token-of-bravo-0123456789": "bravo"}
INTERVAL = 0.5


@pytest.fixture(autouse=True)
def _fresh_redis_keys():
    """Overrides tests/e2e/conftest.py's: nothing here touches Redis."""


async def sent(fleet: ClientPool) -> dict:
    [report] = await fleet.request_all("sent", [{}], 10)
    return report


async def connect_agents(fleet: ClientPool, stub: AgentStub) -> dict:
    data = json.dumps(json.loads(build_payload())["data"], separators=(",", ":"))
    await fleet.ping()
    [answer] = await fleet.request_all(
        "connect",
        [
            {
                "server": f"ws://127.0.0.1:{stub.port}",
                "tokens": {name: token for token, name in TOKENS.items()},
                "interval": INTERVAL,
                "data": data,
                "open_timeout": 10,
            }
        ],
        30,
    )
    return answer


async def test_agents_send_on_schedule_and_follow_config():
    async with AgentStub(TOKENS, interval=INTERVAL) as stub:
        fleet = ClientPool(1, entry=run_agent_process)
        try:
            answer = await connect_agents(fleet, stub)
            assert answer == {"connected": 2, "failures": {}, "live": 2}
            await asyncio.sleep(6 * INTERVAL)
            await stub.configure(live=False, idle_interval=0)
            await asyncio.sleep(0.5)
            idle = await sent(fleet)
            await asyncio.sleep(3 * INTERVAL)
            later = await sent(fleet)
        finally:
            await fleet.close()

    assert idle["live"] == 0
    assert idle["closed"] == {}
    assert idle["errors"] == {}
    assert later["sent"] == idle["sent"]  # idle with idle_interval 0: nothing
    assert stub.rejected == []
    assert {c.path for c in stub.connections} == {
        f"/api/ws/agent?interval={INTERVAL:g}"
    }
    for name in ("alpha", "bravo"):
        entries = idle["sent"][name]
        assert len(entries) >= 5, name
        stamps = [stamp for stamp, _ in entries]
        assert stamps == sorted(set(stamps)), name
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(entries)]
        assert all(0.8 * INTERVAL < gap < 1.2 * INTERVAL for gap in gaps), gaps
        assert [r.timestamp for r in stub.metrics() if r.host == name] == stamps


async def test_idle_agents_send_once_per_idle_interval_of_one_tick():
    async with AgentStub(TOKENS, interval=INTERVAL) as stub:
        fleet = ClientPool(1, entry=run_agent_process)
        try:
            await connect_agents(fleet, stub)
            await stub.configure(live=False, idle_interval=INTERVAL)
            await asyncio.sleep(0.5)
            before = await sent(fleet)
            await asyncio.sleep(6 * INTERVAL)
            after = await sent(fleet)
        finally:
            await fleet.close()

    assert after["live"] == 0
    for name in ("alpha", "bravo"):
        entries = after["sent"][name][len(before["sent"][name]) :]
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(entries)]
        assert len(entries) >= 5, name
        assert all(0.8 * INTERVAL < gap < 1.2 * INTERVAL for gap in gaps), gaps
