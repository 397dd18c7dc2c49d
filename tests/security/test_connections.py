"""Slow clients cannot hold a real worker's connections: a request must arrive within
METRICS_HTTP_HEADER_TIMEOUT of the connection's start however slowly its bytes
come, and one address may hold only METRICS_MAX_PENDING_PER_IP connections whose
request has not arrived."""

import asyncio
import time

import pytest

from tests.support import processes

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 2.0
# Far longer than the test will trickle: the request never completes on its own.
SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 500
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (reading
    and discarding what it sends)."""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            data = await asyncio.wait_for(reader.read(65536), max(left, 0.01))
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return False


async def healthz(port: int, source: str = "127.0.0.1") -> bytes:
    """The status line of GET /healthz on a new connection from `source`."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)
    )
    try:
        writer.write(HEALTHZ)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_a_request_sent_a_byte_at_a_time_is_closed_after_the_timeout(tmp_path):
    env = {"METRICS_HTTP_HEADER_TIMEOUT": str(TIMEOUT)}
    with processes.daphne(tmp_path, **env) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        closed_at = None
        for byte in SLOW_REQUEST:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_at = time.monotonic()
                break
            if await closed_by_server(reader, within=0.2):
                closed_at = time.monotonic()
                break
            if time.monotonic() - started > 4 * TIMEOUT:
                break
        writer.close()
        assert closed_at is not None, "the trickling client kept its connection"
        # Counted from the connection's start, not from its last byte.
        assert TIMEOUT - 0.1 <= closed_at - started <= TIMEOUT + 1.5
        # Everybody else is served.
        assert await healthz(port) == b"HTTP/1.1 200 OK\r\n"


async def test_an_idle_kept_alive_connection_is_closed_after_the_timeout(tmp_path):
    env = {"METRICS_HTTP_HEADER_TIMEOUT": str(TIMEOUT)}
    with processes.daphne(tmp_path, **env) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEALTHZ)
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 10) == b"HTTP/1.1 200 OK\r\n"
        answered = time.monotonic()
        assert await closed_by_server(reader, within=4 * TIMEOUT)
        assert time.monotonic() - answered <= TIMEOUT + 1.5
        writer.close()


async def test_a_kept_alive_connection_serves_requests_that_arrive_in_time(tmp_path):
    env = {"METRICS_HTTP_HEADER_TIMEOUT": str(TIMEOUT)}
    with processes.daphne(tmp_path, **env) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(4):
            writer.write(HEALTHZ)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status == b"HTTP/1.1 200 OK\r\n"
            await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 10)
            await asyncio.sleep(TIMEOUT * 0.6)
        writer.close()


async def open_pending(port: int, count: int, source: str = "127.0.0.1") -> list:
    """`count` connections that have sent part of a request's headers."""
    pending = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0)
        )
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await writer.drain()
        pending.append((reader, writer))
    return pending


async def test_one_address_may_hold_only_so_many_pending_connections(tmp_path):
    env = {"METRICS_MAX_PENDING_PER_IP": "5", "METRICS_HTTP_HEADER_TIMEOUT": "60"}
    with processes.daphne(tmp_path, **env) as (_, port):
        # Once served, the connection that waited for the port has surely gone.
        assert await healthz(port) == b"HTTP/1.1 200 OK\r\n"
        pending = await open_pending(port, 5)
        for reader, _ in pending:
            assert not await closed_by_server(reader, within=0.2)

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused_from = time.monotonic()
        assert await closed_by_server(reader, within=5), "a sixth was taken"
        assert time.monotonic() - refused_from < 1.0
        writer.close()
        # Another address is served meanwhile.
        assert await healthz(port, source="127.0.0.2") == b"HTTP/1.1 200 OK\r\n"

        # Once one request arrives, the address has room again.
        reader, completed = pending[-1]
        completed.write(b"Host: 127.0.0.1\r\n\r\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"HTTP/1.1 200 OK\r\n"
        assert await healthz(port) == b"HTTP/1.1 200 OK\r\n"
        for _, writer in pending:
            writer.close()


async def test_no_cap_on_pending_connections_when_it_is_0(tmp_path):
    env = {"METRICS_MAX_PENDING_PER_IP": "0", "METRICS_HTTP_HEADER_TIMEOUT": "60"}
    with processes.daphne(tmp_path, **env) as (_, port):
        pending = await open_pending(port, 1100)
        assert await healthz(port) == b"HTTP/1.1 200 OK\r\n"
        for reader, _ in pending[-10:]:
            assert not await closed_by_server(reader, within=0.05)
        for _, writer in pending:
            writer.close()
