"""Hosts and their agent tokens: naming, creating, rotating, enabling, removing, a
token to its host, and granting a host to its viewers. Tokens are shown once and
stored only as their SHA-256 digest."""

import hashlib
import hmac
import re
import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.hostnames import HOST_NAME_PATTERN, HOST_NAME_RULE
from metrics.models import Host

NAME_RE = re.compile(HOST_NAME_PATTERN)
# Random bytes in a token (URL-safe base64: 43 characters).
TOKEN_BYTES = 32
# Longer than any token we issue by far: refused before a query is made.
MAX_TOKEN_LENGTH = 200


def validate_host_name(name: object) -> str:
    """Return name if it is a valid host name; else raise ValidationError saying
    the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"Invalid host name {name!r}: a host name is {HOST_NAME_RULE}.",
            code="invalid_host_name",
        )
    return name


def hash_token(token: str) -> str:
    """Return the token's SHA-256 digest in hex, as stored in Host.token_hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a new agent token: 32 random bytes, URL-safe base64, not beginning
    with "-" (`monitor-agent --token -x...` would read it as a flag and exit 2)."""
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if not token.startswith("-"):
            return token


def assign_token(host: Host) -> str:
    """Give host a new token, unsaved, and return it (the only time it is known)."""
    token = new_token()
    host.token_hash = hash_token(token)
    return token


def create_host(name: str) -> tuple[Host, str]:
    """Create an enabled agent host; return it and its token (shown once).

    ValidationError for a bad name or one already taken."""
    validate_host_name(name)
    host = Host(name=name)
    token = assign_token(host)
    try:
        # A savepoint: a duplicate must not break the caller's transaction.
        with transaction.atomic():
            host.save()
    except IntegrityError:
        raise duplicate_name(name) from None
    return host, token


def duplicate_name(name: str) -> ValidationError:
    return ValidationError(
        f"A host named {name!r} already exists.", code="duplicate_host_name"
    )


def get_host(name: str) -> Host:
    """Return the host named name; Host.DoesNotExist if there is none."""
    return Host.objects.get(name=name)


def rotate_token(host: Host) -> str:
    """Give host a new token and return it; the old one stops working at once."""
    token = assign_token(host)
    host.save(update_fields=["token_hash"])
    return token


def host_for_token(token: object) -> Host | None:
    """Return the host whose token this is, enabled or not, or None."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    host = Host.objects.filter(token_hash=digest).first()
    # The lookup compares digests in the database; compare again in constant time,
    # and never match the empty digest of a host without a token.
    if host is None or not host.token_hash:
        return None
    if not hmac.compare_digest(host.token_hash, digest):
        return None
    return host


def authenticate_agent(token: object) -> Host | None:
    """Return the enabled host whose token this is, or None."""
    host = host_for_token(token)
    return host if host is not None and host.enabled else None


def register_local_host(name: str) -> Host:
    """Return the host named name, creating it as the local publisher's (no token)
    if it does not exist; an existing host is returned unchanged."""
    validate_host_name(name)
    host, _ = Host.objects.get_or_create(name=name, defaults={"local": True})
    return host


def set_enabled(host: Host, enabled: bool) -> None:
    """Enable or disable host; a disabled host's token no longer connects."""
    host.enabled = enabled
    host.save(update_fields=["enabled"])


def remove_host(host: Host) -> None:
    """Delete host; its token stops working at once."""
    host.delete()


def host_grants(host: Host, viewer: AbstractBaseUser | Group):
    """The host's grants of the viewer's kind: its viewers, or its viewer groups."""
    return host.viewer_groups if isinstance(viewer, Group) else host.viewers


def grant_host(host: Host, viewer: AbstractBaseUser | Group) -> bool:
    """Let a user, or a group's members, see host; False if granted already."""
    grants = host_grants(host, viewer)
    if grants.filter(pk=viewer.pk).exists():
        return False
    grants.add(viewer)
    return True


def revoke_host(host: Host, viewer: AbstractBaseUser | Group) -> bool:
    """Take back a grant of host (open sockets it allowed close, metrics.grants);
    False if there was none."""
    grants = host_grants(host, viewer)
    if not grants.filter(pk=viewer.pk).exists():
        return False
    grants.remove(viewer)
    return True
