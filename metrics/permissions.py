"""Who may watch: any active user, or those with METRICS_REQUIRED_PERMISSION."""

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from rest_framework.permissions import BasePermission


def can_watch(user: AbstractBaseUser) -> bool:
    """True if the (authenticated) user may receive metrics."""
    permission = settings.METRICS_REQUIRED_PERMISSION
    return bool(user.is_authenticated) and (not permission or user.has_perm(permission))


class CanWatchMetrics(BasePermission):
    """DRF permission: the request's user may receive metrics."""

    message = "You do not have permission to watch the metrics."

    def has_permission(self, request, view) -> bool:
        return can_watch(request.user)
