"""The metrics message sent to clients, built from collected figures and a clock."""

from datetime import UTC, datetime
from typing import Any

MESSAGE_TYPE = "metrics"


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a trailing Z, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_snapshot(data: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """Return the `metrics` message for figures collected at `moment`."""
    return {"type": MESSAGE_TYPE, "timestamp": format_timestamp(moment), "data": data}
