"""Telling a host's agent connection that the host changed: its token rotated, the
host disabled, enabled or removed. The connection checks again and closes with
4001 if it may no longer send (metrics.agents), within a moment on every worker."""

import logging

from redis.exceptions import RedisError

from core.groups import send_to_group
from metrics.events import AGENT_RECHECK, agent_group

logger = logging.getLogger(__name__)


def announce_host_change(name: str) -> None:
    """Tell the agent connection of host `name`, wherever it is, to check again.

    Called from synchronous code (the admin, the `hosts` command, signals).
    """
    try:
        send_to_group(agent_group(name), {"type": AGENT_RECHECK})
    except (RedisError, OSError) as error:
        # The change is in the database; a connection that missed this hears of
        # it at its next connect.
        logger.warning("Could not tell host %s's agent of a change: %s", name, error)
