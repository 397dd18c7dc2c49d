"""Every Redis key this service uses, named by one function: redis_key().

Each starts with METRICS_REDIS_PREFIX (P below; `monitor` unless set), so that
several deployments, or a test run, share one Redis server without seeing each other.

| key | what it holds | kept by |
|---|---|---|
| `P:host:...:latest` | a host's latest snapshot event, 3 intervals | metrics.store |
| `P:host:...:history` | a host's snapshot texts by timestamp | metrics.store |
| `P:host:...:state` | a host's last sight, interval, lease | metrics.hoststate |
| `P:host:...:leader` | a host's leading local publisher | metrics.leadership |
| `P:fleet:leader` | the web process that builds the fleet frame | metrics.leadership |
| `P:publisher:heartbeat` | the leading local publisher's last tick | metrics.store |
| `P:viewers:...` | each web process's count of a host's viewers | metrics.viewers |
| `P:sockets:user:...` | one user's open sockets, per web process | metrics.quotas |
| `P:sockets:processes` | each counting web process's expiry | metrics.quotas |
| `P:cache:...` | Django's cache: the login throttles' counts | core.cache |
| `P:...` | channel-layer groups (`P:__group__metrics.HOST`, ...) | channels_redis |
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
