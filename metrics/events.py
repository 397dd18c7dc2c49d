"""What travels on the channel layer: one group per host, which the web processes
with viewers of that host join, and one per host's agent connection; the events
sent to them. Shared by the publisher, the ingest and the fan-out, so that a web
process needs neither the publisher nor psutil."""

import json
import time
from typing import Any

# A snapshot of a host, to its viewers.
EVENT_TYPE = "metrics.snapshot"
# A host went offline or came back, to its viewers.
HOST_EVENT_TYPE = "metrics.host"
# To a host's agent connection: a newer one replaced it.
AGENT_REPLACED = "agent.replaced"
# To a host's agent connection: the host changed (token rotated, disabled, removed).
AGENT_RECHECK = "agent.recheck"


def host_group(host: str) -> str:
    """The group of the web processes that have viewers of `host`."""
    return f"metrics.{host}"


def agent_group(host: str) -> str:
    """The group of `host`'s agent connection (one at a time)."""
    return f"agent.{host}"


def serialise(message: dict[str, Any]) -> str:
    """A message as the compact JSON that is stored and sent."""
    return json.dumps(message, separators=(",", ":"))


def make_event(
    snapshot: dict[str, Any], published_at: float, host: str, interval: float
) -> dict[str, Any]:
    """Return the channel-layer event carrying a host's snapshot, serialised once
    (with its top-level "host"), taken at `published_at` (its timestamp) on
    `interval`; `sent` is when this server published it (its clock, not an
    agent's), which delivery times are counted from."""
    return {
        "type": EVENT_TYPE,
        "ts": published_at,
        "sent": time.time(),
        "host": host,
        "interval": interval,
        "text": serialise({**snapshot, "host": host}),
    }


def make_host_event(host: str, online: bool) -> dict[str, Any]:
    """Return the event telling a host's viewers that it went offline or came back."""
    return {"type": HOST_EVENT_TYPE, "host": host, "online": online}


def host_frame(host: str, online: bool) -> str:
    """The frame viewers get when their host goes offline or comes back."""
    return serialise({"type": "host", "host": host, "online": online})
