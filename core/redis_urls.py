"""REDIS_URL's two kinds: a Redis server's own URL, which redis-py reads as given,
and a Sentinel URL, read here into what a Sentinel-managed connection pool needs.
No Django: the settings read REDIS_URL with it, core.redis makes clients with it.

    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB][?PARAMS]
    rediss+sentinel://...   the same, with TLS to the Sentinels and to the servers

HOST:PORT are Sentinels (port 26379 unless given; an IPv6 address in brackets);
MASTER is the name they monitor the master under; DB, the database (0). USER and
PASSWORD are the Redis servers' (the master's, and the replica's that may succeed
it), percent-encoded. PARAMS: `sentinel_username` and `sentinel_password`, the
Sentinels' own credentials, if they require any; with `rediss+sentinel` also
`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` (paths), `ssl_cert_reqs` (`required`,
`optional` or `none`) and `ssl_check_hostname` (`true` or `false`), as redis-py
reads them from a `rediss://` URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# Each Sentinel scheme, and whether it means TLS.
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
SERVER_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
# A Sentinel that does not answer within this is passed over for the next one: a
# client asks them in turn for the master, so a dead Sentinel's host must not hold
# every reconnection up for the 5 s a Redis server gets.
SENTINEL_TIMEOUT = 2.0

_SENTINEL_CREDENTIALS = ("sentinel_username", "sentinel_password")
_TLS_PARAMS = {
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": ("required", "optional", "none"),
    "ssl_check_hostname": ("true", "false"),
}


@dataclass(frozen=True)
class SentinelURL:
    """A Sentinel URL read: where the Sentinels are, which master, how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_options: tuple[tuple[str, Any], ...] = ()

    def server_options(self) -> dict[str, Any]:
        """Connection options for the master: database, credentials, TLS."""
        return {"db": self.db, **self._login(self.username, self.password)}

    def sentinel_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Connection options for the Sentinels, from the servers' `options`: their
        own credentials, the same TLS, keepalive, and a short timeout."""
        sentinel: dict[str, Any] = {
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "socket_timeout": SENTINEL_TIMEOUT,
        }
        if options.get("socket_keepalive"):
            sentinel["socket_keepalive"] = True
        return {
            **sentinel,
            **self._login(self.sentinel_username, self.sentinel_password),
        }

    def _login(self, username: str | None, password: str | None) -> dict[str, Any]:
        """Credentials, where given, and TLS, where asked for."""
        options: dict[str, Any] = {}
        if username is not None:
            options["username"] = username
        if password is not None:
            options["password"] = password
        if self.tls:
            options["ssl"] = True
            options.update(self.tls_options)
        return options


def is_sentinel_url(url: str) -> bool:
    """Whether `url` names Sentinels rather than a Redis server."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a Sentinel URL; ValueError saying what is wrong with it."""
    scheme = url.partition("://")[0]
    tls = SENTINEL_SCHEMES.get(scheme.lower())
    if tls is None:
        raise ValueError("is not a redis+sentinel:// or rediss+sentinel:// URL")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ValueError(f"is not a valid URL ({error})") from None
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = tuple(_sentinel_address(host) for host in hosts.split(","))
    master, db = _master_and_db(parts.path)
    username, password = _credentials(userinfo)
    params = _params(parts.query, tls)
    tls_options = tuple(
        (name, value == "true" if name == "ssl_check_hostname" else value)
        for name, value in params.items()
        if name in _TLS_PARAMS
    )
    return SentinelURL(
        sentinels=sentinels,
        master=master,
        db=db,
        username=username,
        password=password,
        sentinel_username=params.get("sentinel_username"),
        sentinel_password=params.get("sentinel_password"),
        tls=tls,
        tls_options=tls_options,
    )


def _sentinel_address(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"has a malformed IPv6 Sentinel address {text!r}")
        port = after[1:]
    else:
        host, colon, port = text.partition(":")
        if colon and not port:
            raise ValueError(f"has a Sentinel without its port after ':' ({text!r})")
    if not host:
        raise ValueError(
            "must name at least one Sentinel as HOST:PORT (hosts separated by commas)"
            if not text
            else f"has a Sentinel address without a host ({text!r})"
        )
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"has a Sentinel port that is not 1 to 65535 ({text!r})")
    return host, int(port)


def _master_and_db(path: str) -> tuple[str, int]:
    segments = path.strip("/").split("/") if path.strip("/") else []
    if not segments:
        raise ValueError(
            "must name the master the Sentinels monitor after the hosts "
            "(.../mymaster or .../mymaster/0)"
        )
    if len(segments) > 2:
        raise ValueError(f"must end with /MASTER or /MASTER/DB, not {path!r}")
    master = unquote(segments[0])
    db = segments[1] if len(segments) == 2 else "0"
    if not (db.isascii() and db.isdigit()):
        raise ValueError(f"has a database number that is not a whole number ({db!r})")
    return master, int(db)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _params(query: str, tls: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _SENTINEL_CREDENTIALS:
            params[name] = value
            continue
        allowed = _TLS_PARAMS.get(name)
        if allowed is None:
            known = ", ".join((*_SENTINEL_CREDENTIALS, *_TLS_PARAMS))
            raise ValueError(f"has an unknown parameter {name!r} (known: {known})")
        if not tls:
            raise ValueError(f"may have {name} only with rediss+sentinel:// (TLS)")
        if isinstance(allowed, tuple):
            value = value.lower()
            if value not in allowed:
                choices = ", ".join(allowed)
                raise ValueError(f"must have {name} one of {choices}, got {value!r}")
        params[name] = value
    return params
