"""Users whose passwords the service's own processes can check."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import User


def service_user(username: str, password: str, **fields) -> User:
    """A user with a PBKDF2 password hash, as the service makes them.

    The test settings hash with MD5 for speed; daphne and the commands run with
    the project's settings, which know only their own hashers.
    """
    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode(password, hasher.salt())
    return User.objects.create(username=username, password=encoded, **fields)
