"""One instance of a thing per running event loop.

Redis connections and asyncio tasks belong to the loop that made them; daphne runs one
loop per process, while tests run a loop per test.
"""

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """Holds a value made by `factory` for each event loop that asks for one."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: dict[asyncio.AbstractEventLoop, T] = {}

    def get(self) -> T:
        """Return the running loop's value, making it on first use."""
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._values[loop] = self._factory()
        return value

    def pop(self) -> T | None:
        """Forget and return the running loop's value, if it has one."""
        return self._values.pop(asyncio.get_running_loop(), None)
