"""Ending a test's viewer count, which the service itself never needs to."""

from metrics.viewers import registries


async def close_registry() -> None:
    """Stop this event loop's registry and withdraw its count from Redis."""
    registry = registries.pop()
    if registry is not None:
        await registry.close()
