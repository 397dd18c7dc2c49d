"""A real worker near its file-descriptor limit refuses new connections at once and
keeps serving the ones it has: their snapshots, their token renewals (a database
read) and their HTTP requests (the database and Redis)."""

import asyncio
import json
import time

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.hosts import GROUP, PONG, host_event
from tests.support.waiting import eventually_equal

pytestmark = pytest.mark.django_db(transaction=True)

# The worker's RLIMIT_NOFILE: low enough to reach in a test.
LIMIT = 256
BATCH = 16
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts without a latest snapshot left by another."""


async def closed_soon(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def hold_until_refused(port: int) -> tuple[list, int]:
    """Open idle connections (a request never sent) until the worker refuses one;
    return those it kept, and how many it kept before refusing."""
    held = []
    while len(held) < 4 * LIMIT:
        batch = [await connect(port) for _ in range(BATCH)]
        closed = await asyncio.gather(*(closed_soon(r, 0.5) for r, _ in batch))
        held += [pair for pair, gone in zip(batch, closed, strict=True) if not gone]
        if any(closed):
            return held, len(held)
    raise AssertionError(f"{len(held)} connections held and none refused")


async def http_get(reader, writer, path: str, token: str) -> bytes:
    """A GET on a kept-alive connection; its status line."""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    return status


async def test_near_its_descriptor_limit_a_worker_refuses_new_connections_and_serves_the_ones_it_has(  # noqa: E501
    tmp_path, user, redis_in_test
):
    env = {
        # Only the descriptor limit may refuse here.
        "METRICS_MAX_PENDING_PER_IP": "0",
        "METRICS_HTTP_HEADER_TIMEOUT": "300",
        # Every renewal reads the user from the database (a descriptor).
        "AUTH_USER_CACHE_SECONDS": "0",
    }
    with processes.daphne(tmp_path, descriptors=LIMIT, **env) as (_, port):
        ws = await open_socket(port, str(AccessToken.for_user(user)))
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive_json(ws) == PONG
        kept_alive = await connect(port)
        token = str(AccessToken.for_user(user))
        assert await http_get(*kept_alive, "/healthz", token) == b"HTTP/1.1 200 OK\r\n"

        held, kept = await hold_until_refused(port)
        assert kept > LIMIT // 2, f"refused after only {kept} connections"
        # New connections go on being refused, each at once.
        for _ in range(5):
            reader, writer = await connect(port)
            started = time.monotonic()
            assert await closed_soon(reader, 5)
            assert time.monotonic() - started < 1.0
            writer.close()

        # The socket gets every snapshot, answers, renews its token...
        event = host_event({"type": "metrics", "n": 1}, time.time())
        await redis_in_test.group_send(GROUP, event)
        assert (await receive_json(ws))["n"] == 1
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive_json(ws) == PONG
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await receive_json(ws))["type"] == "auth"
        # ... and the kept-alive connection's requests reach the database and Redis.
        history = "/api/metrics/history?seconds=60"
        assert await http_get(*kept_alive, history, token) == b"HTTP/1.1 200 OK\r\n"

        # Once the idle connections go, new ones are taken again.
        for _, writer in held:
            writer.close()

        async def served() -> bool:
            reader, writer = await connect(port)
            try:
                writer.write(HEALTHZ)
                line = await asyncio.wait_for(reader.readline(), 5)
                return line == b"HTTP/1.1 200 OK\r\n"
            except (TimeoutError, ConnectionError):
                return False
            finally:
                writer.close()

        await eventually_equal(served, True, 10, "new connections still refused")
        await ws.close()
        kept_alive[1].close()
