import contextlib

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from core.redis import close_redis
from monitor.asgi import application
from tests.support.hosts import hold_host
from tests.support.viewers import close_registry

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture
async def redis_layer(clean_redis):
    """The project's Redis channel layer, closed with the test's event loop."""
    layer = get_channel_layer()
    yield layer
    await close_registry()
    await layer.flush()
    await close_redis()


@pytest.fixture
async def communicator(redis_layer):
    """Factory of WebsocketCommunicators on the full ASGI stack; all disconnected."""
    made = []

    def make(query: str = "", headers=(ORIGIN,)) -> WebsocketCommunicator:
        path = f"/api/ws/metrics{'?' if query else ''}{query}"
        comm = WebsocketCommunicator(application, path, headers=list(headers))
        made.append(comm)
        return comm

    yield make
    for comm in made:
        with contextlib.suppress(Exception):  # already closed by the server
            await comm.disconnect()


@pytest.fixture
async def default_host_online(redis_layer):
    """The default host has a sender (it is online): for tests that are not about
    it going offline."""
    lease = await hold_host()
    yield
    await lease.release()
