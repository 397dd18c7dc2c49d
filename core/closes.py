"""Every close the service sends on a WebSocket: its code and its reason, defined once.

Programs branch on the code; the reason is a short phrase for the people reading a
client's log ("token expired"), which the web server (runner.webserver) sends in the
close frame. docs/protocol.md lists each code and reason with what it means.

Codes of our own are in the application range 4000-4999: daphne would turn any other
code but 1000 into 1011. 1011 is the standard "the server cannot serve you now".
"""

from typing import NamedTuple

# The codes, one name each.
UNAUTHORIZED = 4001
FORBIDDEN = 4003
NOT_FOUND = 4004
TOO_MANY_MESSAGES = 4008
MESSAGE_TOO_BIG = 4009
REPLACED = 4010
TOO_MANY_SOCKETS = 4029
SERVER_ERROR = 1011

# RFC 6455: a close frame's reason is at most 123 bytes of UTF-8.
MAX_REASON_BYTES = 123


class Close(NamedTuple):
    """A close code with the reason sent beside it."""

    code: int
    reason: str


# 4001: the token, at connect, on renewal, at expiry, or its user revoked.
NO_TOKEN = Close(UNAUTHORIZED, "no token")
INVALID_TOKEN = Close(UNAUTHORIZED, "invalid token")
TOKEN_EXPIRED = Close(UNAUTHORIZED, "token expired")
# At connect a refused user is not looked into further: one of these three.
USER_REFUSED = Close(UNAUTHORIZED, "user inactive, deleted or password changed")
# On an open socket, the revocation says which.
USER_INACTIVE = Close(UNAUTHORIZED, "user inactive or deleted")
PASSWORD_CHANGED = Close(UNAUTHORIZED, "password changed")
ANOTHER_USERS_TOKEN = Close(UNAUTHORIZED, "token of another user")
# 4003: METRICS_REQUIRED_PERMISSION, at connect or on renewal.
PERMISSION_REQUIRED = Close(FORBIDDEN, "permission required")
# 4004: the host asked for is unknown, disabled, or not the user's to see (the same
# answer, so that names cannot be probed), at connect or when a grant is taken away;
# or none was asked for and no host of the user's can be chosen.
NO_SUCH_HOST = Close(NOT_FOUND, "no such host")
NO_DEFAULT_HOST = Close(NOT_FOUND, "no host to show; choose one with ?host=NAME")
# 4008 and 4009: the client's frames.
RATE_EXCEEDED = Close(TOO_MANY_MESSAGES, "too many messages")
FRAME_TOO_BIG = Close(MESSAGE_TOO_BIG, "message too big")
# 4029: the user already holds METRICS_WS_MAX_SOCKETS_PER_USER sockets.
SOCKET_QUOTA_EXCEEDED = Close(TOO_MANY_SOCKETS, "too many sockets for this user")
# The agent socket (docs/agent-protocol.md; the codes are agent.protocol's).
INVALID_HOST_TOKEN = Close(UNAUTHORIZED, "invalid host token")
HOST_DISABLED = Close(UNAUTHORIZED, "host disabled")
TOO_MANY_SNAPSHOTS = Close(TOO_MANY_MESSAGES, "too many snapshots")
AGENT_FRAME_TOO_BIG = Close(MESSAGE_TOO_BIG, "frame too big")
AGENT_REPLACED = Close(REPLACED, "replaced by a newer connection")
# 1011: Redis could not be reached when the socket connected (or, for an agent,
# when its snapshot was to be stored).
DATA_STORE_UNAVAILABLE = Close(SERVER_ERROR, "data store unavailable")

# The viewers' socket (docs/protocol.md).
VIEWER = (
    NO_TOKEN,
    INVALID_TOKEN,
    TOKEN_EXPIRED,
    USER_REFUSED,
    USER_INACTIVE,
    PASSWORD_CHANGED,
    ANOTHER_USERS_TOKEN,
    PERMISSION_REQUIRED,
    NO_SUCH_HOST,
    NO_DEFAULT_HOST,
    RATE_EXCEEDED,
    FRAME_TOO_BIG,
    SOCKET_QUOTA_EXCEEDED,
    DATA_STORE_UNAVAILABLE,
)
# The agents' socket (docs/agent-protocol.md).
AGENT = (
    INVALID_HOST_TOKEN,
    HOST_DISABLED,
    TOO_MANY_SNAPSHOTS,
    AGENT_FRAME_TOO_BIG,
    AGENT_REPLACED,
    DATA_STORE_UNAVAILABLE,
)
ALL = tuple(dict.fromkeys(VIEWER + AGENT))


def fit_reason(reason: str | None) -> str | None:
    """A reason cut to what a close frame can carry, never splitting a character."""
    if not reason:
        return None
    encoded = reason.encode()[:MAX_REASON_BYTES]
    return encoded.decode(errors="ignore")
