"""A bare `websockets` broadcast server: the ceiling the fanout tool measures against.

The load tool (tests/perf/fanout) starts it; by hand, from the project root:

    .venv/bin/python tests/perf/bare_server.py --payload-file snapshot.json
        [--interval 1] [--port 0] [--backlog 1024]

It accepts a WebSocket on any path and query, without authentication, and every
interval broadcasts the payload (a metrics snapshot as JSON text) to every open
socket, its "timestamp" replaced by the publish wall time to the millisecond. No
compression, like daphne. Stdout gets `listening <port>` once the socket is bound,
then `published <unix time> <timestamp>` for each broadcast; SIGTERM or SIGINT stop
it. Nothing of the project is imported.
"""

import argparse
import asyncio
import contextlib
import math
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast, serve

TIMESTAMP_MARK = '"timestamp":"'
# runservice listens with the same backlog: a connect storm meets the same queue.
DEFAULT_BACKLOG = 1024


def split_payload(text: str) -> tuple[str, str]:
    """Return the payload's text before and after its timestamp's value."""
    start = text.find(TIMESTAMP_MARK)
    if start < 0:
        raise ValueError(f"the payload has no {TIMESTAMP_MARK!r}")
    start += len(TIMESTAMP_MARK)
    end = text.find('"', start)
    return text[:start], text[end:]


def format_timestamp(moment: float) -> str:
    """Format a Unix time as ISO-8601 UTC to the millisecond, with a trailing Z."""
    stamp = datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def emit(line: str) -> None:
    """Tell the tool reading our stdout something, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def hold_open(websocket: ServerConnection) -> None:
    """Keep a client's socket open until it goes, reading (and dropping) its frames."""
    async for _ in websocket:
        pass


async def run(payload: str, port: int, interval: float, backlog: int) -> None:
    """Serve and broadcast every interval until SIGTERM or SIGINT."""
    head, tail = split_payload(payload)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        hold_open, "127.0.0.1", port, backlog=backlog, compression=None
    ) as server:
        emit(f"listening {server.sockets[0].getsockname()[1]}")
        start = time.monotonic()
        due = start
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due - time.monotonic(), 0)):
                    await stop.wait()
            if stop.is_set():
                break
            published_at = time.time()
            stamp = format_timestamp(published_at)
            broadcast(server.connections, head + stamp + tail)
            emit(f"published {published_at:.6f} {stamp}")
            # The next tick of the fixed schedule, skipping any that were missed.
            now = time.monotonic()
            due = start + (math.floor((now - start) / interval) + 1) * interval


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payload-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG)
    args = parser.parse_args()
    if not (math.isfinite(args.interval) and args.interval > 0):
        parser.error("--interval must be a positive number of seconds")
    payload = args.payload_file.read_text()
    try:
        split_payload(payload)
    except ValueError as error:
        parser.error(str(error))
    asyncio.run(run(payload, args.port, args.interval, args.backlog))


if __name__ == "__main__":
    main()
