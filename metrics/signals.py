"""A host saved or deleted is announced once the change is committed, so that its
connected agent and its viewers re-read it (a rotated token, a disabled host)."""

from django.db import transaction

from metrics.hostevents import announce_host_change


def announce_on_commit(name: str) -> None:
    """announce_host_change(name) once the transaction commits: announced earlier, a
    worker would re-read the host as it was and let the old token stay."""
    transaction.on_commit(lambda: announce_host_change(name))


def on_host_saved(sender, instance, **kwargs) -> None:
    """post_save of a Host."""
    if kwargs.get("raw"):
        return
    announce_on_commit(instance.name)


def on_host_deleted(sender, instance, **kwargs) -> None:
    """post_delete of a Host."""
    announce_on_commit(instance.name)
