"""Login throttles per client IP and per username, counted in Redis for all workers,
for both logins: the API's (/api/auth/login, through DRF) and the admin's form.

DRF's SimpleRateThrottle reads a list of attempts from the cache and writes it back,
so two workers checking at the same moment both see room and both record their
attempt over the other's. Here one Lua script on the Redis server checks and records
an attempt atomically, on Redis's clock, with DRF's semantics otherwise: a sliding
window, refused attempts not counted, Retry-After until the oldest attempt leaves.

A username is counted as authentication will see it (username_bucket), so that no
spelling of one account ("bob", " bob", "\tbob", "BOB") gets a count of its own.
"""

import hashlib
import logging
import uuid
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.http import HttpRequest
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


def username_bucket(username: object) -> str | None:
    """What the per-username limit counts a login attempt under; None: no username.

    Authentication sees the username stripped of surrounding whitespace (DRF's
    CharField in the API, Django's UsernameField in the admin, which NFKC-normalises
    it too, as the user model does on save), numbers as their text, and compares it
    exactly. The count is coarser still: case-folded, so "Alice" and "alice" share
    one. It is hashed: a fixed-length key, and no usernames in Redis.
    """
    if isinstance(username, bool) or not isinstance(username, str | int | float):
        return None
    name = get_user_model().normalize_username(str(username).strip())
    name = name.strip().casefold()
    if not name:
        return None
    return hashlib.sha256(name.encode()).hexdigest()


class SharedLoginThrottle(SimpleRateThrottle):
    """A POST-only throttle whose attempts are checked and recorded atomically in
    Redis; it lets requests through, with a warning, when Redis cannot be reached."""

    cache_alias = "default"

    def get_ident_for_login(self, request) -> str | None:
        """What a DRF request's attempt is counted by, or None not to count it."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        if request.method != "POST" or self.rate is None:
            return True
        return self.allow(self.get_ident_for_login(request))

    def allow(self, ident: str | None) -> bool:
        """Record an attempt counted by `ident` if its window has room; say if it
        had (an attempt with no ident is not counted, and allowed)."""
        self.retry_after = None
        if ident is None:
            return True
        key = self.cache_format % {"scope": self.scope, "ident": ident}
        try:
            backend: PrefixedRedisCache = caches[self.cache_alias]
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
        return self.retry_after


class LoginIPThrottle(SharedLoginThrottle):
    """Login attempts per client IP address (LOGIN_RATE_PER_IP)."""

    scope = "login_ip"

    def get_ident_for_login(self, request) -> str:
        # No address (a unix-socket peer): such clients share one count, as in DRF.
        # DRF's get_ident reads only the request's META and headers: a Django
        # HttpRequest (the admin's) works as well as DRF's.
        return self.get_ident(request) or "unknown"


class LoginUsernameThrottle(SharedLoginThrottle):
    """Login attempts per username, from any address (LOGIN_RATE_PER_USERNAME)."""

    scope = "login_username"

    def get_ident_for_login(self, request) -> str | None:
        # A malformed body raises ParseError here: a 400, as the view would answer.
        data = request.data
        return username_bucket(
            data.get("username") if isinstance(data, Mapping) else None
        )


def check_login_attempt(request: HttpRequest, username: object) -> float | None:
    """Count a login attempt outside DRF (the admin's form) against both limits,
    exactly as the API's throttles count theirs; return the seconds to wait if
    either refused it, else None."""
    by_ip = LoginIPThrottle()
    attempts = (
        (by_ip, by_ip.get_ident_for_login(request)),
        (LoginUsernameThrottle(), username_bucket(username)),
    )
    # As DRF does: every throttle sees the attempt, the longest wait is answered.
    waits = [
        throttle.wait() for throttle, ident in attempts if not throttle.allow(ident)
    ]
    return max(waits, default=None)
