"""Load tool: the service's broadcast fan-out, beside a bare websockets server's.

One run measures two targets in turn, with the same number of clients, interval,
payload and procedure:

- "bare": tests/perf/bare_server.py, a pure `websockets` server broadcasting a real
  ~2 KB snapshot of this host every interval (the ceiling);
- "service": the project as production runs it, `manage.py runservice --workers K
  --port P --interval S`, on a fresh SQLite database in a temporary directory, with
  a random Redis key prefix; every client holds its own real JWT access token.

For each: the connect storm (all clients at once: seconds, rate, failures by kind,
handshake times, the kernel's listen-queue overflows), server memory per connection
(RSS growth over the storm, after a few sockets per web process were opened and
closed so one-time set-up is not counted),
then after a warm-up broadcast that every client received, a window of --broadcasts
broadcasts: publish -> first and publish -> last client latency per broadcast,
latency over all deliveries, lost and duplicated messages, disconnections, and CPU
time of the server's web processes (per delivery), of the publisher and Redis, and
of the tool's own client processes (whether they were saturated, which would make
the figures the tool's rather than the server's), and the bytes the clients read
from TCP (the frames as sent) per delivery. For the service, also its workers' own
mean time from publication to the write to their last socket (from /metrics, which
the tool turns on with a token of the run's), which no client's work delays.

With --compress, the run measures "service" (its clients offer nothing, and get
plain frames) and then "deflate": runservice again, on a database of its own, its
clients offering permessage-deflate as browsers do. "deflate_vs_plain" gives the
compressing clients' figures as multiples of the plain ones', and whether p95
publish -> last client and CPU per delivery are within the issue's 1.25x.

With --hosts N (issue 13), the run measures "service" (the single host, as above)
and then "hosts": runservice again, on a database of its own, with N hosts, each
fed by a simulated agent (agents.py) sending a snapshot per interval on the agent
socket, and the clients spread evenly over the hosts as their viewers. Per host and
in total: connects, lost, duplicated, foreign (another host's) and out-of-order
snapshots per viewer, publish (the agent's send) -> first and -> last viewer, the
web workers' CPU per ingested snapshot and per delivery, Redis's commands per
snapshot; then the same CPU and Redis figures with half of each host's viewers, and
with one per host. "hosts_vs_single" sets them against issue 13's bars.

With --fleet (and --hosts N, issue 14), the run measures "service" and then
"fleet": runservice with N hosts and their agents, each sending once per
interval, and the clients on the overview stream, /api/ws/fleet, as users of
--grant-sets S distinct grant sets (user k sees the hosts whose index mod S is at
most k; client i is user i mod S). Per viewer: lost, duplicated and out-of-order
fleet frames (one per interval, known by its timestamp) and frames that do not
list exactly its set's hosts; the frame's timestamp -> first and -> last viewer;
the web workers' CPU per delivery, also net of their CPU with one viewer per grant
set and client process left (ingest, building and framing each frame).
"fleet_vs_single" sets them against issue 14's bars.

Run from the project root (Redis: --redis-url, in any form REDIS_URL takes, else
127.0.0.1:6379 if it answers, else an embedded redis-server the tool starts; with
--hosts or --fleet, an embedded one unless --redis-url, so that Redis's command
count is the run's alone):

    .venv/bin/python -m tests.perf.fanout --clients 2000 [--workers 1]
        [--interval 1] [--broadcasts 10] [--client-processes 1]
        [--connect-timeout 30] [--only bare|service|hosts|fleet|deflate]
        [--hosts N] [--fleet] [--grant-sets S] [--compress] [--redis-url redis://...]

Progress goes to stderr and one JSON line to stdout; a failure is one line on stderr
and a non-zero exit (a target that accepted no client at all is one too, after the
JSON line, which has its connect figures). Every child process is stopped and every
Redis key the run made (all under its random prefix) is deleted before it exits;
nothing else is touched. Latencies are from the message's timestamp to the moment
its bytes reached the client process.

One job per module:

- __main__: the command line, the JSON line and the exit status;
- runs: one run, the targets in turn, everything cleaned up;
- targets: the servers under test (the service with compressing clients too), their
  processes, Redis and tokens;
- clients: the client processes and the sockets they hold;
- measurement: the procedure against one target, and what it samples;
- report: the figures made of the samples;
- broadcasts: a broadcast, known by its timestamp;
- resources: what processes and the kernel use (CPU, memory, sockets, limits);
- seed: the service's database for a run (users' and hosts' tokens), in a child;
- agents: --hosts mode's simulated agents, in a process of their own;
- hosttarget: --hosts mode's target, the service with N hosts and their agents;
- hostwindow: --hosts mode's procedure once the viewers are connected;
- hostreport: --hosts mode's figures, per host, in total and against one host;
- fleettarget: --fleet mode's target, the hosts, their agents and grant sets;
- fleetwindow: --fleet mode's procedure once the viewers are connected;
- fleetreport: --fleet mode's figures, per grant set, in total and against one
  host.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any


class FanoutError(Exception):
    """The run cannot go on; the message says why, in one line."""


async def finish(cleanup: Awaitable[Any]) -> None:
    """Await a clean-up to its end even if cancelled meanwhile (Ctrl-C, SIGTERM),
    then pass the cancellation on: children must be stopped, keys deleted."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()
