"""Which hosts a user may see: superusers every enabled host, other users the
enabled hosts granted to them or to one of their groups.

METRICS_REQUIRED_PERMISSION (metrics.permissions) applies on top of this."""

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q

from metrics.models import Host


def visible_hosts(user: AbstractBaseUser) -> frozenset[str]:
    """The names of the enabled hosts `user` may see, from the database."""
    hosts = Host.objects.filter(enabled=True)
    if not user.is_superuser:
        hosts = hosts.filter(Q(viewers=user) | Q(viewer_groups__user=user))
    return frozenset(hosts.values_list("name", flat=True).distinct())


async def visible_hosts_async(user: AbstractBaseUser) -> frozenset[str]:
    """visible_hosts(), off the event loop."""
    return await database_sync_to_async(visible_hosts, thread_sensitive=False)(user)
