"""Resuming a viewer's stream where it left off: `?since=SEQ&epoch=EPOCH` on the
metrics socket asks for the live snapshots of its host after offset SEQ of EPOCH
(metrics.store holds them, by offset, for METRICS_HISTORY_SECONDS).

This module reads the request, words the `resume` frame, and tells which of the
broadcasts that arrive while and just after the missed ones are sent are repeats
of them: every snapshot text ends with its offset (store._STORE puts it there)."""

import re
from typing import Any, NamedTuple

from django.conf import settings

from core.scopes import query_value
from metrics.store import EPOCH_LENGTH, Missed

# An offset as long as this is past any stream (a billion years of snapshots).
MAX_SINCE_DIGITS = 18
# The share of a socket's send buffer (METRICS_WS_SEND_BUFFER_BYTES) that the
# snapshots replayed at once may fill: sent in one go, more would get the socket
# dropped as a slow reader, and it would resume, and be dropped, again.
REPLAY_SHARE = 0.5
EPOCH_PATTERN = re.compile(f"[0-9a-f]{{{EPOCH_LENGTH}}}")
# The end of every live snapshot's text: its offset.
OFFSET_SUFFIX = re.compile(r',"seq":(\d+),"epoch":"([0-9a-f]+)"}\Z')


class ResumePoint(NamedTuple):
    """The offset a viewer had reached: the last `seq` it got, in `epoch`."""

    since: int
    epoch: str


def parse_resume(scope: dict[str, Any]) -> tuple[ResumePoint | None, str | None]:
    """The resume point a socket's query asks for (None: none), and what is wrong
    with the query if it is not one (the socket then starts as if it named none)."""
    since = query_value(scope, "since")
    epoch = query_value(scope, "epoch")
    if since is None and epoch is None:
        return None, None
    if since is None or epoch is None:
        return None, "since and epoch go together: both, from the last snapshot"
    if not (since.isascii() and since.isdigit()) or len(since) > MAX_SINCE_DIGITS:
        return None, (
            f"since must be a whole number of at most {MAX_SINCE_DIGITS} digits: "
            "the seq of the last snapshot"
        )
    if not EPOCH_PATTERN.fullmatch(epoch):
        return None, (
            f"epoch must be {EPOCH_LENGTH} lowercase hex digits: "
            "the epoch of the last snapshot"
        )
    return ResumePoint(int(since), epoch), None


def replay_budget() -> int:
    """The most bytes of missed snapshots a resumed socket is sent at once; beyond
    that it is not recovered, and the client loads its gap from the history."""
    return int(settings.METRICS_WS_SEND_BUFFER_BYTES * REPLAY_SHARE)


def resume_frame(missed: Missed) -> dict[str, Any]:
    """The frame that starts a resumed stream: whether every snapshot missed is
    coming (and how many), or only the latest."""
    if missed.recovered:
        return {"type": "resume", "recovered": True, "missed": len(missed.texts)}
    return {"type": "resume", "recovered": False}


def offset_of(text: str) -> ResumePoint | None:
    """The offset a snapshot's text ends with (None: it carries none)."""
    found = OFFSET_SUFFIX.search(text)
    return ResumePoint(int(found[1]), found[2]) if found else None


class Replayed(NamedTuple):
    """The snapshots a resumed socket was sent from the held stream: those of
    `epoch` up to `seq`."""

    seq: int
    epoch: str

    @classmethod
    def of(cls, point: ResumePoint, missed: Missed) -> "Replayed":
        """What a socket resumed from `point` has once it is sent `missed`."""
        last = offset_of(missed.texts[-1]) if missed.texts else None
        return cls(last.since if last else point.since, point.epoch)

    def covers(self, text: str) -> bool:
        """Whether a broadcast snapshot is one the socket has already."""
        offset = offset_of(text)
        return (
            offset is not None
            and offset.epoch == self.epoch
            and offset.since <= self.seq
        )
