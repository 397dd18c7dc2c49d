"""The service's own Prometheus metrics: the objects, and one call per event counted.

docs/metrics.md lists each with its type, unit and labels. Under ./run every web
worker writes its figures into PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode, chosen by the library from the environment at import), and a
scrape of any worker sums them all (metrics.exposition); elsewhere they live in this
process. Gauges of what is open now are "livesum": a dead worker's files are dropped
(runner.supervisor marks it dead), so its sockets stop counting.
"""

import time

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `_created` series: multiprocess mode has none, and one process alone the same.
disable_created_metrics()

# Why a viewer's frame was refused: closed (too big, too many) or answered with an
# error frame (the rest). Bounded: never the client's own text.
FRAME_REFUSALS = (
    "too_big",
    "too_many",
    "binary",
    "invalid_json",
    "not_an_object",
    "no_type",
    "unknown_type",
)
# Why an agent's frame was not stored.
SNAPSHOT_REJECTIONS = (
    "invalid",
    "too_big",
    "too_many",
    "data_store_unavailable",
    # Valid, and not stored: a live snapshot sent again, a backfill snapshot older
    # than the history keeps, or one that cannot be placed (the host's clock off).
    "duplicate",
    "too_old",
    "clock_skew",
)
SNAPSHOT_KINDS = ("live", "backfill")
# A login at the API: tokens issued, credentials refused, throttled (429), or a
# request without what a login needs (400).
LOGIN_OUTCOMES = ("success", "failure", "throttled", "invalid")
LOGIN_OUTCOME_BY_STATUS = {200: "success", 401: "failure", 429: "throttled"}
# Publish to written: a snapshot normally takes milliseconds; seconds mean trouble.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

viewer_sockets_open = Gauge(
    "monitor_viewer_sockets_open",
    "Viewer WebSockets open (accepted, not yet closed).",
    multiprocess_mode="livesum",
)
viewers = Gauge(
    "monitor_viewers",
    "Viewer WebSockets watching each host.",
    ["host"],
    multiprocess_mode="livesum",
)
agents_connected = Gauge(
    "monitor_agents_connected",
    "Agent WebSockets holding their host.",
    multiprocess_mode="livesum",
)
snapshots_delivered = Counter(
    "monitor_snapshots_delivered",
    "Snapshots written to viewer sockets (one per socket).",
)
snapshot_delivery_seconds = Histogram(
    "monitor_snapshot_delivery_seconds",
    "Seconds from a snapshot's publication (its timestamp) to its write to the "
    "last of a worker's sockets of its host.",
    buckets=DELIVERY_BUCKETS,
)
fleet_events_published = Counter(
    "monitor_fleet_events_published",
    "Fleet events built from every host's latest snapshot and published (by the "
    "worker that leads the fleet; one per interval across the deployment).",
)
fleet_frames_built = Counter(
    "monitor_fleet_frames_built",
    "Fleet frames serialised and framed: one per fleet event, worker and distinct "
    "set of visible hosts among its fleet viewers.",
)
fleet_frames_delivered = Counter(
    "monitor_fleet_frames_delivered",
    "Fleet frames written to viewer sockets (one per socket).",
)
fleet_delivery_seconds = Histogram(
    "monitor_fleet_delivery_seconds",
    "Seconds from a fleet event's building to its write to the last of a "
    "worker's fleet sockets.",
    buckets=DELIVERY_BUCKETS,
)
slow_clients_dropped = Counter(
    "monitor_slow_clients_dropped",
    "Connections dropped because the client did not read what was sent.",
)
client_frames_refused = Counter(
    "monitor_client_frames_refused",
    "Viewer frames refused, by reason.",
    ["reason"],
)
snapshots_ingested = Counter(
    "monitor_snapshots_ingested",
    "Agent snapshots stored, live or backfill.",
    ["kind"],
)
snapshots_rejected = Counter(
    "monitor_snapshots_rejected",
    "Agent frames not stored, by reason.",
    ["reason"],
)
logins = Counter(
    "monitor_logins",
    "Logins at /api/auth/login, by outcome.",
    ["outcome"],
)

# Every label value known in advance, so each series exists from the start at 0.
for _reason in FRAME_REFUSALS:
    client_frames_refused.labels(_reason)
for _reason in SNAPSHOT_REJECTIONS:
    snapshots_rejected.labels(_reason)
for _kind in SNAPSHOT_KINDS:
    snapshots_ingested.labels(_kind)
for _outcome in LOGIN_OUTCOMES:
    logins.labels(_outcome)


def snapshot_broadcast(published_at: object, written: int) -> None:
    """Count a snapshot written to `written` sockets, and how long after its
    publication the last write ended.

    Once per snapshot and worker, not per socket: in multiprocess mode each update
    costs microseconds, which a fan-out to thousands of sockets would pay thousands
    of times.
    """
    if not written:
        return
    snapshots_delivered.inc(written)
    if isinstance(published_at, int | float) and not isinstance(published_at, bool):
        snapshot_delivery_seconds.observe(max(time.time() - published_at, 0.0))


def fleet_broadcast(built_at: float, framed: int, written: int) -> None:
    """Count a fleet event framed `framed` times and written to `written` sockets
    by this worker, and how long after its building the last write ended."""
    fleet_frames_built.inc(framed)
    if not written:
        return
    fleet_frames_delivered.inc(written)
    fleet_delivery_seconds.observe(max(time.time() - built_at, 0.0))


def frame_refused(reason: str) -> None:
    """Count a viewer frame refused for `reason` (one of FRAME_REFUSALS)."""
    client_frames_refused.labels(reason).inc()


def snapshot_rejected(reason: str) -> None:
    """Count an agent frame not stored for `reason` (one of SNAPSHOT_REJECTIONS)."""
    snapshots_rejected.labels(reason).inc()


def login_answered(status: int) -> None:
    """Count a login by the HTTP status it was answered with."""
    logins.labels(LOGIN_OUTCOME_BY_STATUS.get(status, "invalid")).inc()
