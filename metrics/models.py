from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models

from core.hostnames import HOST_NAME_PATTERN, HOST_NAME_RULE

validate_host_name_format = RegexValidator(
    regex=rf"\A{HOST_NAME_PATTERN}\Z",
    message=f"A host name is {HOST_NAME_RULE}.",
    code="invalid_host_name",
)


class Metrics(models.Model):
    """No table: the anchor of the `metrics.view_metrics` permission."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (("view_metrics", "Can watch the live metrics"),)

    def __str__(self) -> str:
        return "metrics"


class Host(models.Model):
    """A machine whose snapshots the service streams: an agent's, by its token, or
    the local publisher's (no token)."""

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[validate_host_name_format],
        help_text=f"{HOST_NAME_RULE[0].upper()}{HOST_NAME_RULE[1:]}.",
    )
    # The SHA-256 hex digest of the agent's token; "" when the host has no token.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    enabled = models.BooleanField(default=True)
    # Registered by publish_metrics, which publishes without a token.
    local = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who may see the host, besides superusers (metrics.access).
    viewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="visible_hosts",
        help_text="Users who may see this host (superusers see every host).",
    )
    viewer_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="visible_hosts",
        help_text="Groups whose members may see this host.",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name
