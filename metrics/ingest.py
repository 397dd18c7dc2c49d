"""What an agent sends, checked before anything of it is stored: a frame is read
into a Snapshot, or refused with a message that says what is wrong with it.

Everything an agent sends is untrusted: the shape, the types and the sizes are
checked here; the host's identity never comes from the frame (a `host` field in it
is ignored, as is any other unknown top-level field).
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.protocol import METRICS

# UTC, to the second or to the millisecond (or finer), with a Z.
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
SECTIONS = ("cpu", "memory", "network", "disk")
# Numbers (or null where a figure could not be read) in the seed's fields.
NUMBER_FIELDS = {
    "cpu": ("usage_percent", "user", "system", "idle"),
    "memory": (
        "usage_percent",
        "total_bytes",
        "used_bytes",
        "available_bytes",
        "swap_percent",
    ),
    "network": ("bytes_sent_per_sec", "bytes_recv_per_sec"),
    "disk": (),
}
LIST_FIELDS = {"cpu": ("per_core", "frequency_mhz", "load_avg")}
OBJECT_FIELDS = {"network": ("interfaces",), "disk": ("partitions", "io")}
# Bounds on what nests inside `data`: deeper or longer is not a snapshot.
MAX_DEPTH = 6
MAX_STRING = 1024


class SnapshotError(ValueError):
    """A frame that is not a valid snapshot; its message is sent to the agent."""


@dataclass(frozen=True)
class Snapshot:
    """A checked snapshot: when it was taken (its own timestamp, in seconds since
    the epoch), its figures, and whether it is backfill."""

    taken_at: float
    data: dict[str, Any]
    backfill: bool


def parse_frame(text: str) -> Snapshot:
    """Read an agent's text frame as a snapshot, or raise SnapshotError."""
    try:
        frame = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise SnapshotError("invalid JSON") from None
    if not isinstance(frame, dict) or frame.get("type") != METRICS:
        raise SnapshotError('expected a "metrics" snapshot: {"type": "metrics", ...}')
    backfill = frame.get("backfill", False)
    if not isinstance(backfill, bool):
        raise SnapshotError('"backfill" must be true or false')
    return Snapshot(
        taken_at=parse_timestamp(frame.get("timestamp")),
        data=check_data(frame.get("data")),
        backfill=backfill,
    )


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def parse_timestamp(raw: object) -> float:
    """A snapshot's timestamp, in seconds since the epoch."""
    if not isinstance(raw, str) or not TIMESTAMP_RE.fullmatch(raw):
        raise SnapshotError(
            '"timestamp" must be UTC in ISO 8601 with a Z, such as '
            '"2026-01-19T14:30:05.123Z"'
        )
    try:
        moment = datetime.fromisoformat(raw[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise SnapshotError(f'"timestamp" is not a real time: {raw!r}') from None
    return moment.timestamp()


def check_data(data: object) -> dict[str, Any]:
    """The snapshot's `data`, if it holds the four sections of the seed's shapes."""
    if not isinstance(data, dict) or not all(
        isinstance(data.get(section), dict) for section in SECTIONS
    ):
        raise SnapshotError('"data" must hold the objects cpu, memory, network, disk')
    for section in SECTIONS:
        figures = data[section]
        for name in NUMBER_FIELDS[section]:
            if name in figures and not _is_figure(figures[name]):
                raise SnapshotError(f'"{section}.{name}" must be a number or null')
        for name in LIST_FIELDS.get(section, ()):
            value = figures.get(name, [])
            if not isinstance(value, list) or not all(map(_is_figure, value)):
                raise SnapshotError(f'"{section}.{name}" must be a list of numbers')
        for name in OBJECT_FIELDS.get(section, ()):
            if not isinstance(figures.get(name, {}), dict):
                raise SnapshotError(f'"{section}.{name}" must be an object')
    _check_nesting(data, depth=0)
    return data


def _is_figure(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _check_nesting(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SnapshotError("the snapshot nests too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_STRING:
                raise SnapshotError("a name in the snapshot is too long")
            _check_nesting(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_nesting(item, depth + 1)
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise SnapshotError("a text in the snapshot is too long")
    elif isinstance(value, float) and not math.isfinite(value):
        raise SnapshotError("the snapshot holds a number that is not finite")
