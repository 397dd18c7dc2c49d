"""A host saved or deleted is announced once the change is committed, so that its
connected agent and its viewers re-read it (a rotated token, a disabled host), and
every process re-reads who may see it (metrics.grants)."""

from django.db import transaction

from metrics.grants import announce_access_change
from metrics.hostevents import announce_host_change


def announce_on_commit(name: str, access: bool = True) -> None:
    """announce_host_change(name) once the transaction commits, and, if `access`
    may have changed (a host added, enabled, disabled or removed), who may see it:
    announced earlier, a worker would re-read the host as it was and let the old
    token stay."""

    def announce() -> None:
        announce_host_change(name)
        if access:
            announce_access_change(None, [name])

    transaction.on_commit(announce)


def on_host_saved(sender, instance, **kwargs) -> None:
    """post_save of a Host."""
    if kwargs.get("raw"):
        return
    update_fields = kwargs.get("update_fields")
    announce_on_commit(
        instance.name, update_fields is None or "enabled" in update_fields
    )


def on_host_deleted(sender, instance, **kwargs) -> None:
    """post_delete of a Host."""
    announce_on_commit(instance.name)
