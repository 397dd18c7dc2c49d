from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_save


class MetricsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "metrics"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from metrics import grants
        from metrics.signals import on_host_deleted, on_host_saved

        host = self.get_model("Host")
        post_save.connect(on_host_saved, sender=host, dispatch_uid="host-saved")
        post_delete.connect(on_host_deleted, sender=host, dispatch_uid="host-deleted")
        # Who may see which host (metrics.access): every table the answer reads.
        user = get_user_model()
        changes = (
            (m2m_changed, grants.on_viewers_changed, host.viewers.through),
            (m2m_changed, grants.on_viewer_groups_changed, host.viewer_groups.through),
            (m2m_changed, grants.on_memberships_changed, user.groups.through),
            (post_delete, grants.on_group_deleted, Group),
            (post_save, grants.on_user_saved, user),
        )
        for signal, receiver, sender in changes:
            signal.connect(
                receiver, sender=sender, dispatch_uid=f"access-{receiver.__name__}"
            )
