"""Login throttles per client IP and per username, counted in Redis for all workers.

DRF's SimpleRateThrottle reads a list of attempts from the cache and writes it back,
so two workers checking at the same moment both see room and both record their
attempt over the other's. Here one Lua script on the Redis server checks and records
an attempt atomically, on Redis's clock, with DRF's semantics otherwise: a sliding
window, refused attempts not counted, Retry-After until the oldest attempt leaves.
"""

import hashlib
import logging
import uuid
from collections.abc import Mapping

from django.core.cache import caches
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from core.cache import PrefixedRedisCache

logger = logging.getLogger(__name__)

# KEYS[1]: one client's attempts (a sorted set of unique members scored by time).
# ARGV: the number of attempts allowed, the window in seconds, a new unique member.
# Returns {1, 0} when the attempt is allowed (and recorded), else {0, "<seconds until
# the oldest attempt leaves the window>"} (a string: Lua numbers become integers).
RECORD_ATTEMPT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('EXPIRE', KEYS[1], math.ceil(window))
    return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""


class SharedLoginThrottle(SimpleRateThrottle):
    """A POST-only throttle whose attempts are checked and recorded atomically in
    Redis; it lets requests through, with a warning, when Redis cannot be reached."""

    cache_alias = "default"

    def get_ident_for_login(self, request) -> str | None:
        """Return what this throttle counts attempts by, or None not to count."""
        raise NotImplementedError

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST":
            return None
        ident = self.get_ident_for_login(request)
        if ident is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        self.retry_after = None
        try:
            backend = caches[self.cache_alias]
            if not isinstance(backend, PrefixedRedisCache):
                # Another cache (say, local memory in a test): DRF's own counting.
                return super().allow_request(request, view)
            if self.rate is None:
                return True
            key = self.get_cache_key(request, view)
            if key is None:
                return True
            return self.record_attempt(backend, backend.make_key(key))
        except (RedisError, OSError) as error:
            # Logins must keep working while Redis is down (so does nothing else).
            logger.warning(
                "Login throttle %s not applied: the cache is unreachable (%s).",
                self.scope,
                error,
            )
            return True

    def record_attempt(self, backend: PrefixedRedisCache, key: str) -> bool:
        """Record an attempt under key if the window has room; say if it had."""
        script = backend.redis.register_script(RECORD_ATTEMPT)
        allowed, wait = script(
            keys=[key], args=[self.num_requests, self.duration, uuid.uuid4().hex]
        )
        if allowed:
            return True
        # Redis's clock ticks past the window's end at once; DRF rounds up.
        self.retry_after = max(float(wait), 1.0)
        return False

    def wait(self) -> float | None:
        if self.retry_after is not None:
            return self.retry_after
        return super().wait()


class LoginIPThrottle(SharedLoginThrottle):
    """Login attempts per client IP address (LOGIN_RATE_PER_IP)."""

    scope = "login_ip"

    def get_ident_for_login(self, request) -> str | None:
        # No address (a unix-socket peer): such clients share one count, as in DRF.
        return self.get_ident(request) or "unknown"


class LoginUsernameThrottle(SharedLoginThrottle):
    """Login attempts per username, from any address (LOGIN_RATE_PER_USERNAME)."""

    scope = "login_username"

    def get_ident_for_login(self, request) -> str | None:
        # A malformed body raises ParseError here: a 400, as the view would answer.
        data = request.data
        username = data.get("username") if isinstance(data, Mapping) else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: a fixed-length key whatever the client sends, and no usernames in
        # Redis. Lower-cased: "Alice" and "alice" share one count.
        return hashlib.sha256(username.lower().encode()).hexdigest()
