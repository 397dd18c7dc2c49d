"""The server's address as people write it, turned into the agent socket's URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from agent.protocol import AGENT_PATH

# http(s) is what people copy from their browser; the socket speaks ws(s).
_SOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def agent_url(server: str, interval: float | None = None) -> str:
    """Return the ws:// or wss:// URL of the agent socket on `server`.

    `server` is http(s):// or ws(s)://, a bare base (AGENT_PATH is appended, after
    any path prefix a proxy serves the service under) or the socket's own URL. The
    agent's interval, if given, goes in the query. Raises ValueError saying what is
    wrong with `server`.
    """
    raw = server.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as error:
        raise ValueError(f"{raw!r} is not a URL ({error})") from None
    scheme = _SOCKET_SCHEMES.get(parts.scheme.lower())
    if scheme is None or "//" not in raw:
        raise ValueError(
            f"must start with http://, https://, ws:// or wss://, got {raw!r}"
        )
    if not parts.hostname:
        raise ValueError(f"names no host, got {raw!r}")
    if port == 0:
        raise ValueError(f"names port 0, got {raw!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not hold a user name or password (the token is sent apart)"
        )
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise ValueError(
            f"must not have a query (?...) or a fragment (#...), got {raw!r}"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(AGENT_PATH):
        path += AGENT_PATH
    query = "" if interval is None else f"interval={format_seconds(interval)}"
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def format_seconds(seconds: float) -> str:
    """Write seconds as briefly as exactly: 5, 0.5, 2.25."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))
