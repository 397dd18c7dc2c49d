from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who may sign in and watch the metrics stream."""
