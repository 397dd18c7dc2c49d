"""Channels middleware that authenticates a WebSocket from its JWT access token."""

from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from accounts.tokens import authenticate_socket_token
from core.scopes import query_value

# Browsers cannot set headers on a WebSocket, but can offer subprotocols:
# new WebSocket(url, ["bearer", token]) keeps the token out of the URL.
BEARER_PROTOCOL = "bearer"


def get_socket_token(scope: dict) -> str:
    """Return the token offered as subprotocols `bearer, <jwt>`, else `?token=`."""
    protocols = scope.get("subprotocols") or []
    if len(protocols) >= 2 and protocols[0] == BEARER_PROTOCOL:
        return protocols[1]
    return query_value(scope, "token", keep_blank=False) or ""


class JWTAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] to the token's active user (or AnonymousUser), and
    scope["authentication"] to what the check found (accounts.tokens'
    TokenAuthentication, or None), from which the socket's TokenSession starts.

    It never rejects a connection itself: the consumer accepts and then closes
    with 4001, which a browser can see (a close before accept becomes HTTP 403).
    """

    async def __call__(self, scope, receive, send):
        found = await authenticate_socket_token(get_socket_token(scope))
        scope = dict(
            scope,
            user=found.user if found else AnonymousUser(),
            authentication=found,
        )
        return await super().__call__(scope, receive, send)


def JWTAuthMiddlewareStack(inner):
    """Wrap an ASGI app so that websockets carry the user of their token."""
    return JWTAuthMiddleware(inner)
