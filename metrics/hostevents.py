"""What a change to a host tells the processes that serve it.

A minimal version: the server's core may replace it, keeping announce_host_change().
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

AGENT_RECHECK_EVENT = "agent.recheck"


def agent_group(name: str) -> str:
    """The channel-layer group of host name's connected agent consumers."""
    return f"agent.{name}"


def announce_host_change(name: str) -> None:
    """Tell the connected agents and viewers of host name that it changed."""
    # This version tells the agents only (the group agent.<name>): they re-read the
    # host and close with 4001 if its token was rotated or it was disabled.
    try:
        async_to_sync(get_channel_layer().group_send)(
            agent_group(name), {"type": AGENT_RECHECK_EVENT}
        )
    except (RedisError, OSError) as error:
        logger.warning("Could not announce the change of host %s: %s", name, error)
