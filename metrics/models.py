from django.db import models


class Metrics(models.Model):
    """No table: the anchor of the `metrics.view_metrics` permission."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (("view_metrics", "Can watch the live metrics"),)

    def __str__(self) -> str:
        return "metrics"
