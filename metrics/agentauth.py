"""Whether an agent's connection may send for a host: at connect, by its token, and
again whenever the host changes (its token rotated, the host disabled or removed)."""

import hmac

from core import closes
from metrics.hosts import host_for_token
from metrics.models import Host


def find_agent_host(token: str) -> tuple[Host | None, closes.Close | None]:
    """The enabled host whose token this is; or None and the close that refuses
    it (4001: an invalid token, or the host is disabled)."""
    host = host_for_token(token)
    if host is None:
        return None, closes.INVALID_HOST_TOKEN
    if not host.enabled:
        return None, closes.HOST_DISABLED
    return host, None


def is_current_agent_host(name: str, token_hash: str) -> closes.Close | None:
    """None if the host `name` still exists, is enabled and has the token whose
    hash is `token_hash`; else the close for a connection made with it."""
    host = Host.objects.filter(name=name).first()
    if host is None or not hmac.compare_digest(host.token_hash, token_hash):
        return closes.INVALID_HOST_TOKEN
    if not host.enabled:
        return closes.HOST_DISABLED
    return None
