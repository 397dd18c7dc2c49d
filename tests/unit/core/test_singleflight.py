"""Callers that overlap share one read; none gets an answer older than it asked for."""

import asyncio
import time

import pytest

from core.singleflight import SingleFlight


class CountedRead:
    """A read that takes a moment, counting how often it runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        return self.runs


async def test_overlapping_callers_share_one_read():
    flights, read = SingleFlight(), CountedRead()
    callers = [asyncio.ensure_future(flights.run("k", read)) for _ in range(20)]
    await asyncio.sleep(0)
    read.release.set()
    assert await asyncio.gather(*callers) == [1] * 20
    assert read.runs == 1
    assert flights.flights == {}


async def test_each_key_has_its_own_read():
    flights, read = SingleFlight(), CountedRead()
    read.release.set()
    results = await asyncio.gather(flights.run("a", read), flights.run("b", read))
    assert sorted(results) == [1, 2]


async def test_a_read_begun_before_the_caller_asked_is_not_shared():
    flights, read = SingleFlight(), CountedRead()
    first = asyncio.ensure_future(flights.run("k", read))
    await asyncio.sleep(0)  # the flight is made
    await asyncio.sleep(0)  # its read begins
    second = asyncio.ensure_future(flights.run("k", read, time.monotonic()))
    await asyncio.sleep(0)
    read.release.set()
    await asyncio.gather(first, second)
    assert read.runs == 2


async def test_a_read_not_begun_yet_is_shared_by_later_callers():
    flights, read = SingleFlight(), CountedRead()
    first = asyncio.ensure_future(flights.run("k", read, time.monotonic()))
    await asyncio.sleep(0)  # the flight is made; its read begins next turn
    second = asyncio.ensure_future(flights.run("k", read, time.monotonic()))
    read.release.set()
    await asyncio.gather(first, second)
    assert read.runs == 1


async def test_a_cancelled_caller_does_not_cancel_the_others_read():
    flights, read = SingleFlight(), CountedRead()
    leaving = asyncio.ensure_future(flights.run("k", read))
    staying = asyncio.ensure_future(flights.run("k", read))
    await asyncio.sleep(0)
    leaving.cancel()
    read.release.set()
    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_forgotten_key_is_read_again():
    flights, read = SingleFlight(), CountedRead()
    first = asyncio.ensure_future(flights.run("k", read))
    await asyncio.sleep(0)
    flights.forget("k")
    second = asyncio.ensure_future(flights.run("k", read))
    await asyncio.sleep(0)
    read.release.set()
    await asyncio.gather(first, second)
    assert read.runs == 2
    assert flights.flights == {}
