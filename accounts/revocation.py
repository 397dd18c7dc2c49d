"""End what a user may no longer hold: the sockets of a user deactivated or
deleted, on every worker; and all of a user's sessions when the password changes."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

from accounts.refresh_tokens import revoke_refresh_tokens
from core import closes

logger = logging.getLogger(__name__)

# Every web process with sockets is a member (metrics.fanout); the event names the
# user, whose sockets close with 4001 and whom each process's ActiveUsers forgets.
REVOCATION_GROUP = "users.revoked"
USER_REVOKED_EVENT = "user.revoked"
# What a revoked user's consumer is sent.
REVOKED_EVENT = "auth.revoked"


def revoke_sockets(user_id: object, why: closes.Close = closes.USER_INACTIVE) -> None:
    """Tell every web worker to close the user's sockets with 4001, saying why."""
    event = {"type": USER_REVOKED_EVENT, "user_id": str(user_id), "reason": why.reason}
    try:
        async_to_sync(get_channel_layer().group_send)(REVOCATION_GROUP, event)
    except (RedisError, OSError) as error:
        # Their tokens still expire within JWT_ACCESS_TOKEN_LIFETIME.
        logger.warning("Could not close the sockets of user %s: %s", user_id, error)


def revoke_sockets_on_commit(
    user_id: object, why: closes.Close = closes.USER_INACTIVE
) -> None:
    """revoke_sockets() once the change is committed: a worker told earlier would
    read the user as they were and let a socket in again."""
    transaction.on_commit(lambda: revoke_sockets(user_id, why))


def revocation_close(event: dict) -> closes.Close:
    """The close a revocation event asks for: one of ours, never the event's text."""
    reason = event.get("reason")
    known = (closes.USER_INACTIVE, closes.PASSWORD_CHANGED)
    return next((close for close in known if close.reason == reason), known[0])


def on_user_saved(sender, instance, created: bool = False, **kwargs) -> None:
    """post_save: a user who is no longer active loses their open sockets; a user
    whose password changed loses every session (refresh tokens and sockets; access
    tokens from before no longer pass, accounts.tokens.issued_for)."""
    if kwargs.get("raw"):
        return
    update_fields = kwargs.get("update_fields")
    password_saved = update_fields is None or "password" in update_fields
    if not created and password_saved and instance.password_changed():
        revoked = revoke_refresh_tokens(instance)
        logger.info(
            "Password of user %s changed: %d refresh token(s) blacklisted, "
            "sockets closing",
            instance.pk,
            revoked,
        )
        revoke_sockets_on_commit(instance.pk, closes.PASSWORD_CHANGED)
    elif not created and not instance.is_active:
        revoke_sockets_on_commit(instance.pk)
    if password_saved:
        instance.stored_password = instance.password


def on_user_deleted(sender, instance, **kwargs) -> None:
    """post_delete: a deleted user loses their open sockets."""
    revoke_sockets_on_commit(instance.pk)
