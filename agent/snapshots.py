"""The metrics message sent to clients, built from collected figures and a clock."""

from datetime import UTC, datetime
from typing import Any

MESSAGE_TYPE = "metrics"


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a trailing Z, to the millisecond.

    Milliseconds, as JavaScript's Date.toISOString() writes them, let a client tell
    how long a snapshot took to reach it.
    """
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def build_snapshot(data: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """Return the `metrics` message for figures collected at `moment`."""
    return {"type": MESSAGE_TYPE, "timestamp": format_timestamp(moment), "data": data}
