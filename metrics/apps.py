from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class MetricsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "metrics"

    def ready(self) -> None:
        from metrics.signals import on_host_deleted, on_host_saved

        host = self.get_model("Host")
        post_save.connect(on_host_saved, sender=host, dispatch_uid="host-saved")
        post_delete.connect(on_host_deleted, sender=host, dispatch_uid="host-deleted")
