"""A fixed schedule of ticks, start + k * interval, that collecting cannot drift."""

import math


def next_tick(start: float, interval: float, now: float) -> float:
    """Return the first tick of the schedule start + k*interval strictly after now."""
    return start + (math.floor((now - start) / interval) + 1) * interval
