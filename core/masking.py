"""URLs and messages with their secrets masked, for what the service prints: the
password of a URL's user, and the value of any query parameter named `*password`
(a Sentinel URL's `sentinel_password`)."""

import re
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
_PASSWORD_PARAM = re.compile(r"(^|&)([^=&]*password)=([^&]*)", re.IGNORECASE)


def masked(url: str) -> str:
    """The URL with its passwords (if any) replaced by ***."""
    # Edited in place: urlunsplit() would rewrite what it does not need to.
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:{MASK}@{host}"
        url = url.replace(parts.netloc, netloc, 1)
    if parts.query:
        query = _PASSWORD_PARAM.sub(rf"\1\2={MASK}", parts.query)
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


def secrets_of(url: str) -> list[str]:
    """The URL's passwords, as written and as decoded."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [
        value
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower().endswith("password") and value
    ]
    return [*found, *(unquote(secret) for secret in found)]


def scrubbed(text: str, url: str) -> str:
    """A message with the URL's passwords, should it quote them, masked."""
    for secret in sorted(set(secrets_of(url)), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
