"""Counting a module's database reads in a test, the real read still made."""

from typing import Any


def recorded(monkeypatch: Any, owner: object, name: str) -> list[Any]:
    """Replace the async function `owner.name` by one that records its argument
    before calling it; return the record."""
    made: list[Any] = []
    real = getattr(owner, name)

    async def counted(argument):
        made.append(argument)
        return await real(argument)

    monkeypatch.setattr(owner, name, counted)
    return made
