"""What travels on the channel layer: the group every web process joins, and the
events the publisher sends to it. Shared by the publisher and the fan-out, so that
a web process needs neither the publisher nor psutil."""

import json
from typing import Any

GROUP = "metrics"
EVENT_TYPE = "metrics.snapshot"


def make_event(snapshot: dict[str, Any], published_at: float) -> dict[str, Any]:
    """Return the channel-layer event carrying a snapshot serialised once."""
    return {
        "type": EVENT_TYPE,
        "ts": published_at,
        "text": json.dumps(snapshot, separators=(",", ":")),
    }
