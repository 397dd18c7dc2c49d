"""A broadcast as the tool knows it: the timestamp text that names it, and when."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

TIMESTAMP_MARK = b'"timestamp":"'
HOST_MARK = b'"host"'


@dataclass(frozen=True)
class Broadcast:
    """One published snapshot: its timestamp text, as clients see it, and when."""

    key: str
    published_at: float


def extract_key(message: bytes) -> str:
    """Return the value of a message's "timestamp" found by string search, or ""."""
    start = message.find(TIMESTAMP_MARK)
    if start < 0:
        return ""
    start += len(TIMESTAMP_MARK)
    return message[start : message.find(b'"', start)].decode()


def extract_host(message: bytes) -> str:
    """Return the value of a message's first "host" field (white space around its
    colon allowed), or "" if it has none; snapshots' data has no such field."""
    start = message.find(HOST_MARK)
    if start < 0:
        return ""
    start = message.find(b'"', start + len(HOST_MARK))
    end = message.find(b'"', start + 1)
    if start < 0 or end < 0:
        return ""
    return message[start + 1 : end].decode()


def read_fleet_frame(message: bytes) -> tuple[str, list[str] | None] | None:
    """Return a fleet frame's timestamp and the host names it lists, in its order
    (None if its entries are not a list of hosts); None if it is not a fleet
    frame with a timestamp."""
    try:
        frame = json.loads(message)
        if frame["type"] != "fleet" or not isinstance(frame["timestamp"], str):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    try:
        return frame["timestamp"], [entry["host"] for entry in frame["hosts"]]
    except (TypeError, KeyError):
        return frame["timestamp"], None


def host_key(host: str, timestamp: str) -> str:
    """The key a snapshot of one of several hosts is known by: host and timestamp
    (two hosts' agents may stamp the same millisecond)."""
    return f"{host}|{timestamp}"


def parse_timestamp(text: str) -> tuple[float, bool]:
    """Return the Unix time of a snapshot timestamp and whether it has milliseconds.

    Accepts "2026-01-19T14:30:05.123Z" and the older "2026-01-19T14:30:05Z".
    """
    if not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    whole, dot, fraction = text[:-1].partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if dot and not (fraction.isdigit() and len(fraction) <= 6):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    seconds = float(f"0.{fraction}") if dot else 0.0
    return moment.timestamp() + seconds, bool(dot)
