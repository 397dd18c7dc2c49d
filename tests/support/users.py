"""Users whose passwords the service's own processes can check, and the tests'
watchers: the group the tests' users are in and their hosts are granted to (a user
who is not a superuser sees only the hosts granted to them or a group of theirs)."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group

from accounts.models import User
from metrics.models import Host

WATCHERS = "test-watchers"


def service_user(username: str, password: str, **fields) -> User:
    """A user with a PBKDF2 password hash, as the service makes them.

    The test settings hash with MD5 for speed; daphne and the commands run with
    the project's settings, which know only their own hashers.
    """
    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode(password, hasher.salt())
    return User.objects.create(username=username, password=encoded, **fields)


def watchers() -> Group:
    return Group.objects.get_or_create(name=WATCHERS)[0]


def watcher(user: User) -> User:
    """The user, made one of the tests' watchers: they see the hosts watched."""
    user.groups.add(watchers())
    return user


def watched(name: str) -> str:
    """Grant the host `name` to the tests' watchers; return its name."""
    Host.objects.get(name=name).viewer_groups.add(watchers())
    return name
