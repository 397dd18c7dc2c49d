"""How long to wait before the next attempt to reach the server."""

from __future__ import annotations

import random as _random
from collections.abc import Callable

FIRST_DELAY = 0.5
MAX_DELAY = 30.0


class Backoff:
    """Jittered exponential backoff: each delay is a random point in the upper half
    of 0.5 s, 1 s, 2 s, ... doubling up to 30 s, as the dashboard's reconnects are."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        ceiling: float = MAX_DELAY,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.first = first
        self.ceiling = ceiling
        self.random = random
        self.attempts = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt, and count the attempt."""
        # min() before the power's result grows: the exponent is capped as well, so
        # a host unreachable for weeks cannot overflow a float.
        step = min(self.first * 2 ** min(self.attempts, 64), self.ceiling)
        self.attempts += 1
        # Half fixed, half random: never a burst of agents all at once after a
        # server restart, and never a delay near zero.
        return step / 2 + self.random() * step / 2

    def reset(self) -> None:
        """Start again from the first delay (the server answered)."""
        self.attempts = 0
