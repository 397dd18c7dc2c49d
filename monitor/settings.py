"""Settings for the host-metrics service; the only module that reads the environment.

Every variable is documented in the README with its default and meaning. A missing or
invalid value raises ImproperlyConfigured at start-up, naming the variable to fix.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from agent.devices import DEFAULT_DISK_EXCLUDE, DEFAULT_NET_EXCLUDE
from core.bounds import INTERVAL_SECONDS, VIEWER_MAX_MESSAGE_BYTES, Bounds
from core.hostnames import HOST_NAME_PATTERN, default_host_name
from core.keys import redis_key
from core.masking import masked
from core.redis import channel_layer_host
from core.redis_urls import is_sentinel_url, parse_sentinel_url

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean variable: 1/true/yes/on or 0/false/no/off."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (true/false), got {raw!r}.")


def env_number(
    name: str, default: float, bounds: Bounds, *, whole: bool = False
) -> float:
    """Read a number of seconds (or similar, or a `whole` number) within its bounds."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return bounds.parse(raw, whole=whole)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} {error}.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated list; empty items are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} must list at least one value.")
    return items


def env_globs(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Read a comma-separated list of glob patterns; set but empty, an empty list."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    patterns = tuple(item.strip() for item in raw.split(",") if item.strip())
    for pattern in patterns:
        if any(char.isspace() for char in pattern):
            raise ImproperlyConfigured(
                f"{name} must be comma-separated glob patterns without spaces "
                f"inside one (such as lo,docker*,veth*), got {pattern!r}."
            )
    return patterns


def env_choice(name: str, default: str, choices: set[str]) -> str:
    """Read one of a fixed set of words (case-insensitive)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.upper() not in choices:
        allowed = ", ".join(sorted(choices))
        raise ImproperlyConfigured(f"{name} must be one of {allowed}, got {raw!r}.")
    return raw.upper()


def env_redis_url(name: str, default: str) -> str:
    """Read a Redis URL: a server's (redis://, rediss://, unix://) or Sentinels'
    (redis+sentinel://, rediss+sentinel://; core/redis_urls.py)."""
    url = os.environ.get(name, "").strip() or default
    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name} {error}: expected redis+sentinel://[:PASSWORD@]HOST:PORT"
                f"[,HOST:PORT...]/MASTER[/DB], got {masked(url)!r}."
            ) from None
        return url
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(
            f"{name} must be a redis://, rediss:// or unix:// URL, or a "
            f"redis+sentinel:// or rediss+sentinel:// URL, got {url!r}."
        )
    if parts.scheme == "unix" and not parts.path:
        raise ImproperlyConfigured(f"{name} must name a socket path, got {url!r}.")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} must name a host, got {url!r}.")
    return url


def env_database(name: str, default: str) -> dict:
    """Read a database URL (sqlite:/// or postgres://) into a DATABASES entry."""
    url = os.environ.get(name, "").strip() or default
    try:
        config = dj_database_url.parse(url)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not a valid URL: {error}") from None
    engine = config.get("ENGINE", "")
    if engine not in {
        "django.db.backends.sqlite3",
        "django.db.backends.postgresql",
    }:
        raise ImproperlyConfigured(
            f"{name} must be a sqlite:/// or postgres:// URL, got {url!r}."
        )
    return config


DEBUG = env_bool("DJANGO_DEBUG", default=False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set (or set DJANGO_DEBUG=1 for development)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"]
)
# Unset, ./run --host <a machine address> admits this machine's names as well.
ALLOWED_HOSTS_IS_SET = os.environ.get("DJANGO_ALLOWED_HOSTS") is not None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "runner",
    "accounts",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every page loads only this origin's files, no inline script (core/csp.py).
    "core.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "monitor.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "monitor.asgi.application"

DATABASES = {
    "default": env_database(
        "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
# The URL as given (or the default), for messages; whether it was given at all.
DATABASE_URL = (
    os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
)
DATABASE_URL_IS_SET = bool(os.environ.get("DATABASE_URL", "").strip())
# Keep database connections for a while (token checks on connect run on a pool of
# threads, each with its own connection), checking them before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env_number(
    "DATABASE_CONN_MAX_AGE", default=60, bounds=Bounds(0, 3600)
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Transactions take the write lock when they begin, so that one waiting for
        # another (20 parallel refreshes of a token) waits up to the timeout instead
        # of failing at once with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the collected files (`collectstatic`, which ./run and the image
# run) with far-future caching of their hashed names; no CDN, no separate server.
# The storage also points the dashboard's ES module imports at the hashed names.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "core.staticfiles.JSModuleManifestStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
}

# How long a web process trusts the active user it read for a socket's token
# (accounts.tokens.ActiveUsers); deactivating or deleting a user takes effect at once.
AUTH_USER_CACHE_SECONDS = env_number(
    "AUTH_USER_CACHE_SECONDS", default=30, bounds=Bounds(0, 3600)
)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=env_number(
            "JWT_ACCESS_TOKEN_LIFETIME", default=300, bounds=Bounds(1, 86400)
        )
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_number(
            "JWT_REFRESH_TOKEN_LIFETIME", default=86400, bounds=Bounds(1, 30 * 86400)
        )
    ),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", "") or SECRET_KEY,
    "UPDATE_LAST_LOGIN": False,
    # /api/auth/refresh answers a new refresh token too and blacklists the one it
    # was given, so a refresh token works once; the new one keeps the first one's
    # expiry: JWT_REFRESH_TOKEN_LIFETIME is a session's lifetime. /api/auth/logout
    # blacklists one (accounts/refresh_tokens.py).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Tokens carry a digest of the password's hash: a password change makes every
    # token issued before it invalid (accounts.tokens.issued_for).
    "CHECK_REVOKE_TOKEN": True,
    # Every claim checked for its shape before use (accounts/claims.py).
    "AUTH_TOKEN_CLASSES": ("accounts.claims.AccessToken",),
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.LoginSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.RefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "accounts.serializers.VerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "accounts.serializers.LogoutSerializer",
}

REDIS_URL = env_redis_url("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Whether REDIS_URL names a server; if not, the runner starts an embedded one.
REDIS_URL_IS_SET = bool(os.environ.get("REDIS_URL", "").strip())

# Prefix of every Redis key and pub/sub channel this service uses, so that several
# deployments (or a test run) can share one Redis server without seeing each other
# (core/keys.py lists them all).
METRICS_REDIS_PREFIX = os.environ.get("METRICS_REDIS_PREFIX", "").strip() or "monitor"

METRICS_INTERVAL = env_number("METRICS_INTERVAL", default=5, bounds=INTERVAL_SECONDS)


def env_host_name(name: str, default: str) -> str:
    """A host name from the environment (lowercased), or `default` when unset."""
    raw = os.environ.get(name, "").strip().lower()
    if raw and not re.fullmatch(HOST_NAME_PATTERN, raw):
        raise ImproperlyConfigured(
            f"{name} must be a host name of lowercase letters, digits, dots and "
            f"hyphens ({HOST_NAME_PATTERN}), got {raw!r}."
        )
    return raw or default


# The host the local publisher (publish_metrics) publishes as: this machine's name,
# lowercased (cut to a valid host name), unless set.
METRICS_HOST_NAME = env_host_name("METRICS_HOST_NAME", default_host_name())
# The host a viewer that names none watches; unset: the local publisher's host if it
# is registered, else the only host.
METRICS_DEFAULT_HOST = env_host_name("METRICS_DEFAULT_HOST", "")
# Seconds between snapshots of a host nobody watches, so that its history goes on;
# 0: none at all until somebody watches.
METRICS_IDLE_INTERVAL = env_number(
    "METRICS_IDLE_INTERVAL", default=60, bounds=Bounds(0, 86400)
)
if 0 < METRICS_IDLE_INTERVAL < INTERVAL_SECONDS.minimum:
    raise ImproperlyConfigured(
        f"METRICS_IDLE_INTERVAL must be 0 or at least {INTERVAL_SECONDS.minimum:g} "
        f"seconds, got {METRICS_IDLE_INTERVAL:g}."
    )
# A live snapshot whose timestamp is further than this from the server's clock is
# stamped with the time it arrived, and its host is flagged.
METRICS_MAX_CLOCK_SKEW = env_number(
    "METRICS_MAX_CLOCK_SKEW", default=60, bounds=Bounds(1, 86400)
)

# Network interfaces and disks left out of the snapshots (glob patterns): loopback and
# virtual interfaces, loop/RAM/zram devices (agent/devices.py has the defaults). Set
# but empty, nothing is left out.
METRICS_NET_EXCLUDE = env_globs("METRICS_NET_EXCLUDE", DEFAULT_NET_EXCLUDE)
METRICS_DISK_EXCLUDE = env_globs("METRICS_DISK_EXCLUDE", DEFAULT_DISK_EXCLUDE)

# Who may watch: empty for any active user, or a permission such as
# "metrics.view_metrics" that users (or their groups) must have.
METRICS_REQUIRED_PERMISSION = os.environ.get("METRICS_REQUIRED_PERMISSION", "").strip()
if METRICS_REQUIRED_PERMISSION and "." not in METRICS_REQUIRED_PERMISSION:
    raise ImproperlyConfigured(
        "METRICS_REQUIRED_PERMISSION must look like app_label.codename, "
        f"got {METRICS_REQUIRED_PERMISSION!r}."
    )

# Client frames: a frame over this many bytes closes its socket with 4009; more than
# METRICS_WS_MESSAGES_PER_SECOND (bursts of up to METRICS_WS_MESSAGE_BURST) closes
# it with 4008.
METRICS_WS_MAX_MESSAGE_BYTES = int(
    env_number(
        "METRICS_WS_MAX_MESSAGE_BYTES",
        default=4096,
        bounds=Bounds(64, VIEWER_MAX_MESSAGE_BYTES),
    )
)
METRICS_WS_MESSAGES_PER_SECOND = env_number(
    "METRICS_WS_MESSAGES_PER_SECOND", default=5, bounds=Bounds(0.1, 1000)
)
METRICS_WS_MESSAGE_BURST = int(
    env_number("METRICS_WS_MESSAGE_BURST", default=20, bounds=Bounds(1, 10000))
)

# A client that does not read its socket is dropped once this many bytes wait to be
# sent to it, or once data has waited this many seconds (runner/webserver.py).
METRICS_WS_SEND_BUFFER_BYTES = int(
    env_number(
        "METRICS_WS_SEND_BUFFER_BYTES", default=1048576, bounds=Bounds(4096, 2**30)
    )
)
METRICS_WS_SLOW_CLIENT_TIMEOUT = env_number(
    "METRICS_WS_SLOW_CLIENT_TIMEOUT", default=30, bounds=Bounds(1, 3600)
)

# Sockets one user may hold open at once, counted across every web worker through
# Redis (metrics/quotas.py); one more is closed with 4029. 0: no cap.
METRICS_WS_MAX_SOCKETS_PER_USER = int(
    env_number(
        "METRICS_WS_MAX_SOCKETS_PER_USER",
        default=1000,
        bounds=Bounds(0, 10**6),
        whole=True,
    )
)

# Whether the web server (runner/webserver.py) may use the extensions that reach into
# daphne's, Twisted's and autobahn's internals (runner/extensions.py): the byte bound
# on a slow client's buffer, snapshots framed once and written straight to the kernel,
# no pretty-printing per connect. Each is checked against the installed libraries at
# start-up and left off, with one warning, if it does not fit. 0 turns them all off:
# stock behaviour, slower; a slow client is dropped by the timeout above only, and a
# snapshot over daphne's --websocket-max-message-size cannot go out.
METRICS_SERVER_EXTENSIONS = env_bool("METRICS_SERVER_EXTENSIONS", default=True)

# Connections a web worker takes (runner/connections.py): a request must arrive within
# METRICS_HTTP_HEADER_TIMEOUT seconds of the connection's start, however slowly its
# bytes come; one address may hold METRICS_MAX_PENDING_PER_IP connections whose
# request has not arrived (0: no cap, behind a proxy).
METRICS_HTTP_HEADER_TIMEOUT = env_number(
    "METRICS_HTTP_HEADER_TIMEOUT", default=10, bounds=Bounds(1, 3600)
)
METRICS_MAX_PENDING_PER_IP = int(
    env_number(
        "METRICS_MAX_PENDING_PER_IP", default=1000, bounds=Bounds(0, 10**6), whole=True
    )
)

# Seconds of snapshots kept in Redis for /api/metrics/history (and the dashboard).
METRICS_HISTORY_SECONDS = env_number(
    "METRICS_HISTORY_SECONDS", default=900, bounds=Bounds(60, 86400)
)

# Seconds a web process's viewer count outlives the process (one killed with SIGKILL
# cannot withdraw it); live processes renew theirs ten times as often.
METRICS_VIEWER_TTL = env_number("METRICS_VIEWER_TTL", default=30, bounds=Bounds(1, 600))

# The bearer token Prometheus sends to scrape /metrics (docs/metrics.md); unset or
# empty, /metrics answers 404.
METRICS_PROMETHEUS_TOKEN = os.environ.get("METRICS_PROMETHEUS_TOKEN", "").strip()
# Where the web workers of one machine keep their Prometheus figures, summed by a
# scrape of any of them (prometheus_client's multiprocess mode, which reads the
# variable itself); ./run sets it for its workers. Unset: this process's own.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()

# Connection options for every Redis client of ours. redis-py 8 would otherwise
# close a socket after 5 s without a reply (an idle pub/sub subscriber, taking
# every WebSocket of the process down with 1011) and refuse more than 100 pooled
# connections (failing bursts of connects with HTTP 500).
REDIS_CONNECTION_OPTIONS = {
    "socket_timeout": None,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
    "max_connections": 10_000,
    "retry_on_timeout": True,
}
if not REDIS_URL.startswith("unix:"):
    # TCP only: detects a dead peer that never said goodbye (unix sockets can't).
    REDIS_CONNECTION_OPTIONS["socket_keepalive"] = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            # A server's URL as given, or the Sentinels and the master's name
            # (core/redis.py makes every other Redis client and pool too).
            "hosts": [channel_layer_host(REDIS_URL, REDIS_CONNECTION_OPTIONS)],
            "prefix": redis_key("", prefix=METRICS_REDIS_PREFIX),
        },
    },
}

# The first administrator, created by `ensure_admin` (and the runner) if missing.
SUPERUSER_USERNAME = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
SUPERUSER_PASSWORD = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")

METRICS_LOG_LEVEL = env_choice(
    "METRICS_LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"}
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {
        "disallowed_host": {"()": "core.logfilters.DisallowedHostLine"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # A request for a host not served: one line naming DJANGO_ALLOWED_HOSTS.
        "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
        "metrics": {"level": METRICS_LOG_LEVEL},
        "accounts": {"level": METRICS_LOG_LEVEL},
        # Which of the web server's extensions are on (runner/extensions.py).
        "runner.extensions": {"level": METRICS_LOG_LEVEL},
    },
}

# Login throttling and the shared cache.
# POST /api/auth/login is throttled per client IP and per username
# (accounts/throttles.py); the attempts are counted in Redis, through Django's cache,
# so that every web worker on every host shares the counts.
_RATE_PERIODS = {"s", "sec", "m", "min", "h", "hour", "d", "day"}


def env_rate(name: str, default: str) -> str:
    """Read a DRF throttle rate such as 5/min: N/(s|sec|m|min|h|hour|d|day), N >= 1."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    count, slash, period = (part.strip() for part in raw.partition("/"))
    period = period.lower()
    if not (slash and count.isascii() and count.isdigit() and period in _RATE_PERIODS):
        raise ImproperlyConfigured(
            f"{name} must look like 5/min: a number, a slash and one of "
            f"s, sec, m, min, h, hour, d, day; got {raw!r}."
        )
    if int(count) < 1:
        raise ImproperlyConfigured(
            f"{name} must allow at least 1 request, got {raw!r}."
        )
    return f"{int(count)}/{period}"


LOGIN_RATE_PER_IP = env_rate("LOGIN_RATE_PER_IP", default="20/min")
LOGIN_RATE_PER_USERNAME = env_rate("LOGIN_RATE_PER_USERNAME", default="5/min")

REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "login_ip": LOGIN_RATE_PER_IP,
    "login_username": LOGIN_RATE_PER_USERNAME,
}
# The client IP is REMOTE_ADDR, never a client's own X-Forwarded-For (which anyone
# can set to get a fresh count): without a proxy REMOTE_ADDR is the peer, and behind
# nginx daphne's --proxy-headers sets it from the header nginx overwrites.
REST_FRAMEWORK["NUM_PROXIES"] = 0

# Keys live under "<METRICS_REDIS_PREFIX>:cache:", apart from the metrics keys; the
# backend's clear() deletes those keys only (Django's own would FLUSHDB the server).
CACHES = {
    "default": {
        "BACKEND": "core.cache.PrefixedRedisCache",
        # core.cache makes its pools with core.redis, Sentinel URLs included.
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": redis_key("cache", prefix=METRICS_REDIS_PREFIX),
        "OPTIONS": {**REDIS_CONNECTION_OPTIONS, "socket_timeout": 5},
    }
}
