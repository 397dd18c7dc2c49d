from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who may sign in and watch the metrics stream."""

    # The password hash as the database last held it, so that a save can tell a
    # password change, however it was made (accounts.revocation).
    stored_password: str | None = None

    @classmethod
    def from_db(cls, db, field_names, values):
        user = super().from_db(db, field_names, values)
        user.stored_password = dict(zip(field_names, values, strict=True)).get(
            "password"
        )
        return user

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        super().refresh_from_db(using, fields, from_queryset)
        if fields is None or "password" in fields:
            self.stored_password = self.password

    def password_changed(self) -> bool:
        """Whether the password differs from what the database held when read."""
        return self.password != self.stored_password
