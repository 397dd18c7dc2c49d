"""A broadcast as the tool knows it: the timestamp text that names it, and when."""

from dataclasses import dataclass
from datetime import UTC, datetime

TIMESTAMP_MARK = b'"timestamp":"'


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
