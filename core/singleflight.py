"""Share one read already in flight among the callers that overlap it.

A storm of connects would otherwise send the same read (the latest snapshot, a
socket's user) once per socket; with a flight per key they send it a few times.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Flight(Generic[T]):
    """One run of a read, and when it began."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        # When the read began (time.monotonic()); None until its task first runs.
        self.began: float | None = None
        self.task = asyncio.ensure_future(self.run(read))

    async def run(self, read: Callable[[], Awaitable[T]]) -> T:
        self.began = time.monotonic()
        return await read()

    def answers(self, not_before: float | None) -> bool:
        """Whether this read's answer is no older than `not_before`."""
        return not_before is None or self.began is None or self.began >= not_before


class SingleFlight(Generic[T]):
    """Reads by key, each shared by the callers that overlap it (one event loop)."""

    def __init__(self) -> None:
        self.flights: dict[Hashable, Flight[T]] = {}

    async def run(
        self,
        key: Hashable,
        read: Callable[[], Awaitable[T]],
        not_before: float | None = None,
    ) -> T:
        """Return what `read()` returns, joining a read of `key` in flight if it
        began no earlier than `not_before` (a time.monotonic() value).

        A caller that is cancelled does not cancel the read the others share.
        """
        flight = self.flights.get(key)
        if flight is None or not flight.answers(not_before):
            flight = self.flights[key] = Flight(read)
            flight.task.add_done_callback(lambda _: self.land(key, flight))
        return await asyncio.shield(flight.task)

    def land(self, key: Hashable, flight: Flight[T]) -> None:
        """Forget a finished flight, unless another has taken its key since."""
        if self.flights.get(key) is flight:
            del self.flights[key]

    def forget(self, key: Hashable) -> None:
        """Let the next caller of `key` start a read of its own."""
        self.flights.pop(key, None)

    def clear(self) -> None:
        """Let the next caller of every key start a read of its own."""
        self.flights.clear()
