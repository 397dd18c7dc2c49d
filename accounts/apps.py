from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from accounts.revocation import on_user_deleted, on_user_saved

        user = self.get_model("User")
        post_save.connect(on_user_saved, sender=user, dispatch_uid="revoke-on-save")
        post_delete.connect(
            on_user_deleted, sender=user, dispatch_uid="revoke-on-delete"
        )
