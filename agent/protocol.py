"""The agent socket's wire format (docs/agent-protocol.md): its path, its frames, its
limits and its close codes, defined once for agents and for the server.

Standard library only: the server's web workers may import it, and they must load
neither psutil nor websockets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Final

AGENT_PATH: Final = "/api/ws/agent"

# Seconds between snapshots: the agent's --interval and the server's live interval
# (the same bounds as METRICS_INTERVAL; a test holds them equal to core/bounds.py).
INTERVAL_MIN: Final = 0.5
INTERVAL_MAX: Final = 3600.0
# An idle interval is 0 (send nothing) or a number of seconds up to a day.
IDLE_INTERVAL_MAX: Final = 86400.0

# A bigger frame from an agent closes its socket with CLOSE_MESSAGE_TOO_BIG.
MAX_FRAME_BYTES: Final = 256 * 1024
# The server's rate limits (token buckets per socket); over them: CLOSE_TOO_FAST.
LIVE_FRAMES_PER_INTERVAL: Final = 3
LIVE_FRAME_BURST: Final = 6
BACKFILL_FRAMES_PER_SECOND: Final = 50
BACKFILL_FRAME_BURST: Final = 100
# How fast this agent sends its backfill: well inside the server's limit.
BACKFILL_PACE_PER_SECOND: Final = 20

# Close codes of the agent socket, each sent with a short reason.
CLOSE_UNAUTHORIZED: Final = 4001  # missing, wrong, rotated or disabled token
CLOSE_TOO_FAST: Final = 4008  # over a rate limit, sustained
CLOSE_MESSAGE_TOO_BIG: Final = 4009  # a frame over MAX_FRAME_BYTES
CLOSE_REPLACED: Final = 4010  # another agent connected with the same token

METRICS: Final = "metrics"
HELLO: Final = "hello"
CONFIG: Final = "config"
ERROR: Final = "error"


@dataclass(frozen=True, slots=True)
class Cadence:
    """What the server asks of the agent: live or not, and how often to send."""

    interval: float
    live: bool
    idle_interval: float

    @property
    def period(self) -> float | None:
        """Seconds between snapshots now, or None when nothing is to be sent."""
        if self.live:
            return self.interval
        return self.idle_interval or None


@dataclass(frozen=True, slots=True)
class ServerFrame:
    """A frame from the server, read: its type, and what it says."""

    type: str
    cadence: Cadence | None = None
    host: str | None = None
    message: str | None = None
    # What was wrong with the frame's fields (those fields keep their old values).
    problems: tuple[str, ...] = ()


def metrics_frame(snapshot: dict[str, Any], *, backfill: bool = False) -> str:
    """Serialise a snapshot as the agent sends it, flagged when it is backfill."""
    frame = {**snapshot, "backfill": True} if backfill else snapshot
    # The separators of metrics/events.py: the bytes the local publisher stores.
    return json.dumps(frame, separators=(",", ":"))


def read_server_frame(text: str | bytes, current: Cadence) -> ServerFrame:
    """Read a frame from the server; `hello` and `config` update `current`.

    Raises ValueError for a frame that is not a JSON object with a string `type`.
    A field with a bad value is named in `problems` and keeps its current value.
    """
    if isinstance(text, bytes):
        raise ValueError("a binary frame")
    try:
        frame = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ValueError('not a JSON object with a string "type"')
    kind = frame["type"]
    if kind == ERROR:
        return ServerFrame(kind, message=str(frame.get("message", ""))[:500])
    if kind not in (HELLO, CONFIG):
        return ServerFrame(kind)
    cadence, problems = _read_cadence(frame, current)
    host = frame.get("host")
    return ServerFrame(
        kind,
        cadence=cadence,
        host=host if isinstance(host, str) else None,
        problems=problems,
    )


def _read_cadence(
    frame: dict[str, Any], current: Cadence
) -> tuple[Cadence, tuple[str, ...]]:
    changes: dict[str, Any] = {}
    problems = []
    if "interval" in frame:
        value = frame["interval"]
        if _is_number(value) and INTERVAL_MIN <= value <= INTERVAL_MAX:
            changes["interval"] = float(value)
        else:
            problems.append(
                f"interval {value!r} is not {INTERVAL_MIN:g}-{INTERVAL_MAX:g}"
            )
    if "live" in frame:
        value = frame["live"]
        if isinstance(value, bool):
            changes["live"] = value
        else:
            problems.append(f"live {value!r} is not true or false")
    if "idle_interval" in frame:
        value = frame["idle_interval"]
        if _is_number(value) and (
            value == 0 or INTERVAL_MIN <= value <= IDLE_INTERVAL_MAX
        ):
            changes["idle_interval"] = float(value)
        else:
            problems.append(
                f"idle_interval {value!r} is not 0 or {INTERVAL_MIN:g}-"
                f"{IDLE_INTERVAL_MAX:g}"
            )
    return replace(current, **changes), tuple(problems)


def _is_number(value: Any) -> bool:
    # JSON true/false are bools, which Python counts as ints; NaN and infinities are
    # not numbers a schedule can use.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
