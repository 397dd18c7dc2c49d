"""Figures over samples, for the benchmarks and the load tool."""

import math


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples`."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]
