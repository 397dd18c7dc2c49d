"""Values a process remembers for a while: each kept with the moment it was read
and trusted for a lifetime asked at every lookup (a setting, so that a change of
it applies at once); past PRUNE_ABOVE entries, the expired ones are dropped as new
ones come in."""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class Remembered(Generic[V]):
    """Values by key, each trusted for `lifetime()` seconds after it was read."""

    PRUNE_ABOVE = 1000

    def __init__(self, lifetime: Callable[[], float]) -> None:
        self.lifetime = lifetime
        self.entries: dict[str, tuple[V, float]] = {}

    def get(self, key: str) -> V | None:
        """The value remembered for `key` while it may be trusted, else None."""
        entry = self.entries.get(key)
        return entry[0] if entry is not None and self.fresh(entry[1]) else None

    def put(self, key: str, value: V, read_at: float) -> None:
        """Remember `value`, read at `read_at` (time.monotonic())."""
        self.entries[key] = (value, read_at)
        if len(self.entries) > self.PRUNE_ABOVE:
            self.entries = {
                name: entry
                for name, entry in self.entries.items()
                if self.fresh(entry[1])
            }

    def fresh(self, read_at: float) -> bool:
        """Whether an entry read at `read_at` may still be trusted."""
        return time.monotonic() - read_at < self.lifetime()

    def pop(self, key: str) -> None:
        """Forget `key`."""
        self.entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self.entries.clear()
