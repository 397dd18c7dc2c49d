"""Sending a channel-layer event to a group from synchronous code (the admin,
commands, signal handlers), in threads with or without an event loop of their own."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def send_to_group(group: str, event: dict) -> None:
    """group_send `event` to `group`, blocking until sent; Redis errors propagate.

    In a thread that runs an event loop of its own, it sends from a thread of its
    own, as async_to_sync cannot run there.
    """
    send = async_to_sync(get_channel_layer().group_send)
    if _loop_running():
        with ThreadPoolExecutor(max_workers=1) as thread:
            thread.submit(send, group, event).result()
    else:
        send(group, event)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
