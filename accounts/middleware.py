"""Channels middleware that authenticates a WebSocket from its JWT access token."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from accounts.tokens import get_user_for_token


def get_query_token(scope: dict) -> str:
    """Return the `token` query parameter of a connection scope, or ""."""
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query).get("token", [])
    return values[0] if values else ""


class JWTAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] to the token's active user, or AnonymousUser.

    It never rejects a connection itself: the consumer accepts and then closes
    with 4001, which a browser can see (a close before accept becomes HTTP 403).
    """

    async def __call__(self, scope, receive, send):
        user = await database_sync_to_async(get_user_for_token)(get_query_token(scope))
        scope = dict(scope, user=user or AnonymousUser())
        return await super().__call__(scope, receive, send)


def JWTAuthMiddlewareStack(inner):
    """Wrap an ASGI app so that websockets carry the user of their token."""
    return JWTAuthMiddleware(inner)
