"""Close the sockets of a user who was deactivated or deleted, on every worker."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Every web process with sockets is a member (metrics.fanout); the event names the
# user, whose sockets close with 4001 and whom each process's ActiveUsers forgets.
REVOCATION_GROUP = "users.revoked"
USER_REVOKED_EVENT = "user.revoked"
# What a revoked user's consumer is sent.
REVOKED_EVENT = "auth.revoked"


def revoke_sockets(user_id: object) -> None:
    """Tell every web worker to close the user's sockets with 4001."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            REVOCATION_GROUP, {"type": USER_REVOKED_EVENT, "user_id": str(user_id)}
        )
    except (RedisError, OSError) as error:
        # Their tokens still expire within JWT_ACCESS_TOKEN_LIFETIME.
        logger.warning("Could not close the sockets of user %s: %s", user_id, error)


def on_user_saved(sender, instance, created: bool = False, **kwargs) -> None:
    """post_save: a user who is no longer active loses their open sockets."""
    if not created and not instance.is_active:
        revoke_sockets(instance.pk)


def on_user_deleted(sender, instance, **kwargs) -> None:
    """post_delete: a deleted user loses their open sockets."""
    revoke_sockets(instance.pk)
