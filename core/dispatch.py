"""A consumer's messages dispatched straight to their handlers.

Channels' `AsyncConsumer.dispatch` runs Django's `close_old_connections` in a
thread before every message: a thread hop per frame and per channel-layer event,
the largest cost of a busy socket. Consumers whose every query goes through
`database_sync_to_async` (which closes stale connections itself) gain nothing from
it, and take this mixin instead.
"""

from typing import Any

from channels.consumer import get_handler_name


class DirectDispatch:
    """Dispatch each message to its handler, with no database housekeeping first."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run the message's handler (a message with none is an error, as in
        Channels)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
