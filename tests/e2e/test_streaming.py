"""Real daphne and publish_metrics processes streaming to real clients."""

import asyncio
import json
import re

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.hosts import HOST, PONG

pytestmark = pytest.mark.django_db(transaction=True)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def collect_snapshots(ws, count: int) -> list[dict]:
    received = []
    while len(received) < count:
        message = await receive_json(ws)
        assert message["type"] == "metrics"
        received.append(message)
    return received


async def test_clients_on_two_daphnes_get_the_same_snapshots_exactly_once(
    tmp_path, access_token
):
    with (
        processes.daphne(tmp_path) as (_, first_port),
        processes.daphne(tmp_path) as (_, second_port),
    ):
        clients = [
            await open_socket(port, access_token)
            for port in (first_port, first_port, second_port, second_port)
        ]
        with processes.publisher(tmp_path, "--interval", "1"):
            streams = await asyncio.gather(
                *(collect_snapshots(ws, 3) for ws in clients)
            )
        for ws in clients:
            await ws.close()
    timestamps = [[m["timestamp"] for m in stream] for stream in streams]
    assert all(stamps == timestamps[0] for stamps in timestamps)
    assert timestamps[0] == sorted(set(timestamps[0]))
    assert all(stream == streams[0] for stream in streams)


async def test_snapshot_has_the_specified_format(tmp_path, server, access_token):
    with processes.publisher(tmp_path, "--interval", "1"):
        ws = await open_socket(server, access_token)
        message = await receive_json(ws)
        await ws.close()
    # The specified keys, the host the snapshot is of (issue 13) and its offset.
    assert set(message) == {"type", "timestamp", "data", "host", "seq", "epoch"}
    assert isinstance(message["seq"], int)
    assert message["seq"] > 0
    assert re.fullmatch("[0-9a-f]{16}", message["epoch"])
    assert message["host"] == HOST
    assert TIMESTAMP.match(message["timestamp"])
    data = message["data"]
    assert set(data) == {"cpu", "memory", "network", "disk"}
    cpu = data["cpu"]
    for key in ("usage_percent", "user", "system", "idle"):
        assert isinstance(cpu[key], float)
        assert 0.0 <= cpu[key] <= 100.0
    assert all(isinstance(core, float) for core in cpu["per_core"])
    assert cpu["frequency_mhz"] is None or isinstance(cpu["frequency_mhz"], list)
    assert len(cpu["load_avg"]) == 3
    memory = data["memory"]
    for key in ("total_bytes", "used_bytes", "available_bytes"):
        assert isinstance(memory[key], int)
    assert memory["total_bytes"] > 0
    for key in ("usage_percent", "swap_percent"):
        assert isinstance(memory[key], float)
    network = data["network"]
    assert isinstance(network["interfaces"], dict)
    assert "lo" not in network["interfaces"]
    for key in ("bytes_sent_per_sec", "bytes_recv_per_sec"):
        if network["interfaces"]:
            assert isinstance(network[key], float)
            assert network[key] >= 0
        else:  # a host with loopback only: no interface counts
            assert network[key] is None
    assert set(data["disk"]) == {"partitions", "io"}
    for usage in data["disk"]["partitions"].values():
        assert 0.0 <= usage["usage_percent"] <= 100.0


async def test_latest_snapshot_arrives_at_once_on_connect(
    tmp_path, server, access_token
):
    with processes.publisher(tmp_path, "--once") as publisher:
        assert publisher.wait(30) == 0
    ws = await open_socket(server, access_token)
    message = await receive_json(ws, within=1.0)
    await ws.close()
    assert message["type"] == "metrics"


async def test_socket_survives_more_than_five_seconds_of_silence(
    tmp_path, server, access_token
):
    ws = await open_socket(server, access_token)
    await asyncio.sleep(6.5)
    await ws.send('{"type": "ping"}')
    assert await receive_json(ws) == PONG
    with processes.publisher(tmp_path, "--once") as publisher:
        assert publisher.wait(30) == 0
    message = await receive_json(ws)
    assert message["type"] == "metrics"
    await ws.close()


async def test_many_clients_connect_at_once(server, access_token):
    sockets = await asyncio.gather(
        *(open_socket(server, access_token) for _ in range(150))
    )
    for ws in sockets:
        await ws.send('{"type": "ping"}')
    replies = await asyncio.gather(*(receive_json(ws) for ws in sockets))
    assert replies == [PONG] * 150
    await asyncio.gather(*(ws.close() for ws in sockets))


async def test_closed_client_does_not_disturb_the_others(
    tmp_path, server, access_token
):
    leaving = await open_socket(server, access_token)
    staying = await open_socket(server, access_token)
    await leaving.close()
    with pytest.raises(ConnectionClosed):
        await leaving.recv()
    with processes.publisher(tmp_path, "--once") as publisher:
        assert publisher.wait(30) == 0
    assert json.loads(await staying.recv())["type"] == "metrics"
    await staying.close()
