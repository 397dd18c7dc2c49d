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

    async def connect(self) -> None:
        """Accept, then close with 4001 unless the middleware found a user."""
        self.joined = False
        self.last_ts = float("-inf")
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
            await self.metrics_snapshot(latest)

    async def disconnect(self, code: int) -> None:
        """Leave the group when the socket goes away."""
        if getattr(self, "joined", False):
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
        except ValueError:
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
        """Forward a snapshot event, once, in order (its text is already JSON)."""
        if event["ts"] <= self.last_ts:
            return
        self.last_ts = event["ts"]
        await self.send(text_data=event["text"])
