"""Telling every web process that who may see which host changed: a host's viewers
or viewer groups, a group's members, a group deleted, a user saved (superuser or
not), a host added, enabled, disabled or removed.

Each change is sent once committed to the group every process with sockets is a
member of (accounts.revocation.REVOCATION_GROUP, through metrics.fanout), naming
the users it may affect and the hosts (None: everyone, every host). Each process
then forgets those users' hosts (metrics.access) and closes their sockets of hosts
they may no longer see with 4004, as if the host did not exist. Changes that send
no signal (queryset.update(), raw SQL) take effect within AUTH_USER_CACHE_SECONDS.
"""

import logging
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from redis.exceptions import RedisError

from accounts.revocation import REVOCATION_GROUP
from core.groups import send_to_group
from metrics.models import Host

logger = logging.getLogger(__name__)

ACCESS_CHANGED_EVENT = "access.changed"
# The m2m_changed actions after which the grants are as they will stay.
CHANGED = ("post_add", "post_remove", "post_clear")


def access_event(
    user_ids: Iterable[object] | None, hosts: Iterable[str] | None
) -> dict:
    """The event naming the users (None: everyone) and hosts (None: every host)
    whose access may have changed."""
    return {
        "type": ACCESS_CHANGED_EVENT,
        "user_ids": None if user_ids is None else sorted({str(u) for u in user_ids}),
        "hosts": None if hosts is None else sorted(set(hosts)),
    }


Names = frozenset[str] | None


def read_access_event(event: dict) -> tuple[Names, Names]:
    """The users and hosts an access event names (None: all); a malformed field
    counts as all, which costs a wider re-check and nothing else."""

    def names(value: object) -> Names:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return frozenset(value)
        return None

    return names(event.get("user_ids")), names(event.get("hosts"))


def announce_access_change(
    user_ids: Iterable[object] | None, hosts: Iterable[str] | None
) -> None:
    """Tell every web process now (see access_event)."""
    try:
        send_to_group(REVOCATION_GROUP, access_event(user_ids, hosts))
    except (RedisError, OSError) as error:
        # Open sockets keep their host until AUTH_USER_CACHE_SECONDS at most.
        logger.warning("Could not announce a change of who sees which host: %s", error)


def announce_on_commit(
    user_ids: Iterable[object] | None, hosts: Iterable[str] | None
) -> None:
    """announce_access_change() once the change is committed: told earlier, a
    process would read the grants as they were."""
    user_ids = None if user_ids is None else list(user_ids)
    hosts = None if hosts is None else list(hosts)
    if user_ids == [] or hosts == []:
        return
    transaction.on_commit(lambda: announce_access_change(user_ids, hosts))


def host_names(pks: Iterable[object]) -> list[str]:
    return list(Host.objects.filter(pk__in=pks).values_list("name", flat=True))


def group_members(group_pks: Iterable[object]) -> list[object]:
    users = get_user_model()._default_manager.filter(groups__pk__in=group_pks)
    return list(users.values_list("pk", flat=True).distinct())


def on_viewers_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """m2m_changed of Host.viewers: from a host's side (pk_set: users) or a user's
    (pk_set: hosts; the admin's user page, user.visible_hosts)."""
    if action not in CHANGED:
        return
    if not reverse:
        announce_on_commit(pk_set, [instance.name])
    else:
        hosts = None if pk_set is None else host_names(pk_set)
        announce_on_commit([instance.pk], hosts)


def on_viewer_groups_changed(
    sender, instance, action, reverse, pk_set, **kwargs
) -> None:
    """m2m_changed of Host.viewer_groups: the members of the groups, as they are
    now, are who is affected."""
    if action not in CHANGED:
        return
    if not reverse:
        users = None if pk_set is None else group_members(pk_set)
        announce_on_commit(users, [instance.name])
    else:
        hosts = None if pk_set is None else host_names(pk_set)
        announce_on_commit(group_members([instance.pk]), hosts)


def on_memberships_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """m2m_changed of User.groups: from a user's side (pk_set: groups) or a
    group's (pk_set: users; None for a group cleared)."""
    if action not in CHANGED:
        return
    if not reverse:
        announce_on_commit([instance.pk], None)
    else:
        announce_on_commit(pk_set, None)


def on_group_deleted(sender, instance, **kwargs) -> None:
    """post_delete of a Group: its members are gone with it, so anyone may be
    affected."""
    announce_on_commit(None, None)


def on_user_saved(sender, instance, created: bool = False, **kwargs) -> None:
    """post_save of a user: whether they are a superuser may have changed."""
    update_fields = kwargs.get("update_fields")
    if created or kwargs.get("raw"):
        return
    if update_fields is None or "is_superuser" in update_fields:
        announce_on_commit([instance.pk], None)
