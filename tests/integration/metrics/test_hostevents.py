"""A host's change reaches its agent's group on the real channel layer."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from metrics.hostevents import announce_host_change


async def test_a_change_of_a_host_reaches_its_agent_group_and_no_other(redis_layer):
    mine = await redis_layer.new_channel()
    other = await redis_layer.new_channel()
    await redis_layer.group_add("agent.web1", mine)
    await redis_layer.group_add("agent.web2", other)
    await sync_to_async(announce_host_change)("web1")
    event = await asyncio.wait_for(redis_layer.receive(mine), timeout=5)
    assert event == {"type": "agent.recheck"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(redis_layer.receive(other), timeout=0.3)
