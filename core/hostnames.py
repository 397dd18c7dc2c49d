"""Host names: the form every host's name takes, and this machine's own."""

import re
import socket

# DNS-label-like: what a host may be called (hosts, URLs, Redis keys and groups).
HOST_NAME_PATTERN = r"[a-z0-9][a-z0-9.-]{0,62}"
HOST_NAME_RULE = (
    "1 to 63 characters: lowercase letters, digits, dots and hyphens, "
    "starting with a letter or a digit"
)


def default_host_name() -> str:
    """This machine's host name, lowercased and cut to a valid host name."""
    raw = socket.gethostname().lower()
    name = re.sub(r"[^a-z0-9.-]", "-", raw).lstrip(".-")[:63]
    return name or "localhost"
