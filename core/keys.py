"""Every Redis key this service uses, named by one function: redis_key().

Each starts with METRICS_REDIS_PREFIX (P below; `monitor` unless set), so that
several deployments, or a test run, share one Redis server without seeing each other.

| key | what it holds | kept by |
|---|---|---|
| `P:host:...:latest` | a host's latest snapshot event (JSON), for 3 intervals | metrics.store |
| `P:host:...:history` | a host's recent snapshot texts, scored by timestamp | metrics.store |
| `P:host:...:state` | a host's last sight, interval, live, clock skew, sender's lease | metrics.hoststate |
| `P:host:...:leader` | the local publisher leading for a host, while it renews | metrics.leadership |
| `P:publisher:heartbeat` | the leading local publisher's last tick: at, interval, host | metrics.store |
| `P:viewers:...` | each web process's count of a host's viewers, with an expiry | metrics.viewers |
| `P:sockets:user:...` | one user's open sockets, per web process | metrics.quotas |
| `P:sockets:processes` | each counting web process's expiry | metrics.quotas |
| `P:cache:...` | Django's cache: the login throttles' counts | core.cache |
| `P:...` | channel-layer channels and groups (`P:__group__metrics.HOST`, ...) | channels_redis |
"""

from django.conf import settings


def redis_key(*parts: str, prefix: str | None = None) -> str:
    """Return the key `<prefix>:<part>:<part>...` (the prefix: METRICS_REDIS_PREFIX).

    `redis_key("")` is the bare `<prefix>:`, under which the channel layer names its
    channels. Settings pass `prefix` while they are being read.
    """
    if prefix is None:
        prefix = settings.METRICS_REDIS_PREFIX
    return ":".join((prefix, *parts))
