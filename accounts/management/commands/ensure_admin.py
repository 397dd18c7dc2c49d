"""Make sure a first administrator exists, without ever overwriting one."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

GENERATED_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the first superuser: DJANGO_SUPERUSER_USERNAME with "
        "DJANGO_SUPERUSER_PASSWORD when both are set, otherwise (with --generate, "
        "and only if no superuser exists) 'admin' with a random password printed "
        "once. An existing account is never changed."
    )

    # What this run did, for the runner's banner: the administrator it made, and
    # whether their password was printed.
    username = GENERATED_USERNAME
    printed_password = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--generate",
            action="store_true",
            help="Create 'admin' with a random password if no superuser exists.",
        )

    def handle(self, *args, generate: bool, **options) -> None:
        User = get_user_model()
        username = settings.SUPERUSER_USERNAME
        password = settings.SUPERUSER_PASSWORD
        if bool(username) != bool(password):
            raise CommandError(
                "Set both DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD, "
                "or neither."
            )
        if username:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"Administrator {username!r} already exists.")
                return
            self.create(User, username, password)
            self.username = username
            self.stdout.write(f"Created administrator {username!r}.")
            return
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists.")
            return
        if not generate:
            raise CommandError(
                "No administrator exists: set DJANGO_SUPERUSER_USERNAME and "
                "DJANGO_SUPERUSER_PASSWORD, or pass --generate."
            )
        if User.objects.filter(username=GENERATED_USERNAME).exists():
            raise CommandError(
                f"A non-administrator named {GENERATED_USERNAME!r} exists; "
                "set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD."
            )
        password = secrets.token_urlsafe(12)
        self.create(User, GENERATED_USERNAME, password)
        self.printed_password = True
        self.stdout.write(
            f"Created administrator {GENERATED_USERNAME!r} with password "
            f"{password!r}. It is shown only this once: write it down."
        )

    def create(self, User, username: str, password: str) -> None:
        user = User(username=username, is_staff=True, is_superuser=True)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as error:
            raise CommandError(f"Invalid administrator: {error}") from None
        user.set_password(password)
        user.save()
