"""The metrics WebSocket: authenticated clients receive every snapshot."""

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis.exceptions import RedisError

from metrics.publisher import GROUP
from metrics.store import load_latest
from metrics.viewers import get_registry

logger = logging.getLogger(__name__)

# Close codes of our own, in the application range 4000-4999.
CLOSE_UNAUTHORIZED = 4001
# Daphne reports any server-side failure to the client as 1011.
CLOSE_INTERNAL_ERROR = 1011

MAX_ECHOED_TYPE = 40


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    """Streams snapshots to one authenticated client and answers its pings."""

    joined = False
    # Publish time of the snapshot sent on connect: the first broadcast may repeat it.
    sent_on_connect: float | None = None

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also after a crash in a handler, which skips disconnect(): a socket
            # that is gone must not stay counted as a viewer or subscribed.
            await self.leave()

    async def connect(self) -> None:
        """Accept, then close with 4001 unless the middleware found a user."""
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        try:
            await self.channel_layer.group_add(GROUP, self.channel_name)
            self.joined = True
            get_registry().add()
            latest = await load_latest()
        except (RedisError, OSError) as error:
            logger.warning("Redis unavailable on connect: %s", error)
            await self.close(code=CLOSE_INTERNAL_ERROR)
            return
        if latest is not None:
            await self.send(text_data=latest["text"])
            self.sent_on_connect = latest["ts"]

    async def disconnect(self, code: int) -> None:
        """Leave the group when the socket goes away."""
        await self.leave()

    async def leave(self) -> None:
        """Stop counting this client and leave the group (once)."""
        if not self.joined:
            return
        self.joined = False
        get_registry().remove()
        try:
            await self.channel_layer.group_discard(GROUP, self.channel_name)
        except (RedisError, OSError) as error:
            logger.warning("Could not leave group on disconnect: %s", error)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        """Answer a client frame: pong for a ping, an error message for the rest."""
        if text_data is None:
            await self.send_error("binary frames are not supported; send JSON text")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("invalid JSON")
            return
        if not isinstance(content, dict):
            await self.send_error('expected a JSON object with a "type" field')
            return
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif not isinstance(kind, str):
            await self.send_error('missing "type": expected a string such as "ping"')
        else:
            await self.send_error(f"unknown message type {kind[:MAX_ECHOED_TYPE]!r}")

    async def send_error(self, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_json({"type": "error", "message": message})

    async def metrics_snapshot(self, event: dict[str, Any]) -> None:
        """Forward a snapshot event (its text is already JSON) to the client."""
        if self.sent_on_connect is not None:
            # Published between joining the group and reading the latest snapshot?
            repeated = event["ts"] <= self.sent_on_connect
            self.sent_on_connect = None
            if repeated:
                return
        await self.send(text_data=event["text"])
