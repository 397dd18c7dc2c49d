"""Waiting for a condition that real processes make true, with a deadline."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(condition: Callable[[], T], within: float, message: str) -> T:
    """Poll `condition` until it is truthy and return it; fail after `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(message)


async def eventually_equal(
    read: Callable[[], Awaitable[T]], expected: T, within: float, message: str
) -> None:
    """Await `read()` until it returns `expected`; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while await read() != expected:
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.1)
