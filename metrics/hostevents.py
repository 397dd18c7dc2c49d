"""Telling a host's agent connection that the host changed: its token rotated, the
host disabled, enabled or removed. The connection checks again and closes with
4001 if it may no longer send (metrics.agents), within a moment on every worker."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from metrics.events import AGENT_RECHECK, agent_group

logger = logging.getLogger(__name__)


def announce_host_change(name: str) -> None:
    """Tell the agent connection of host `name`, wherever it is, to check again.

    Called from synchronous code (the admin, the `hosts` command, signals); in a
    thread that runs an event loop of its own, from a thread of its own, as
    async_to_sync cannot run there.
    """
    send = async_to_sync(get_channel_layer().group_send)
    event = {"type": AGENT_RECHECK}
    try:
        if _loop_running():
            with ThreadPoolExecutor(max_workers=1) as thread:
                thread.submit(send, agent_group(name), event).result()
        else:
            send(agent_group(name), event)
    except (RedisError, OSError) as error:
        # The change is in the database; a connection that missed this hears of
        # it at its next connect.
        logger.warning("Could not tell host %s's agent of a change: %s", name, error)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
