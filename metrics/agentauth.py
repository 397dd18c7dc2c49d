"""Which host an agent's token names, checked at connect and again whenever the
host changes (its token rotated, the host disabled or removed)."""

import hmac

from core import closes
from metrics.hosts import hash_token
from metrics.models import Host

# Longer than any token we make: not looked up at all.
MAX_TOKEN_LENGTH = 200


def find_agent_host(token: str) -> tuple[Host | None, closes.Close | None]:
    """The enabled host whose token this is; or None and the close that refuses
    it (4001: an invalid token, or the host is disabled)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None, closes.INVALID_HOST_TOKEN
    digest = hash_token(token)
    host = Host.objects.filter(token_hash=digest).first()
    if host is None or not hmac.compare_digest(host.token_hash, digest):
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
