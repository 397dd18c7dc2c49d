"""The project's settings, as the test suite runs them.

Every run gets a Redis key prefix of its own, so the tests share a Redis server with
anything else without touching its keys. The server is REDIS_URL if set, else a Redis
on 127.0.0.1:6379, else a private embedded redis-server. The SQLite test database is
a file, so that daphne processes started by the end-to-end tests see the same users.
"""

import os
import tempfile
import uuid

from tests.support.redis_server import ensure_test_redis

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-key-never-used-in-production")
os.environ["METRICS_REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
# The local publisher's host, whatever this machine is called (children inherit it).
os.environ["METRICS_HOST_NAME"] = "test-host"
ensure_test_redis()

from monitor.settings import *  # noqa: E402, F403
from monitor.settings import DATABASES  # noqa: E402

# No persistent connections in the test process: threads must not hold the test
# database open when pytest-django drops it.
DATABASES["default"]["CONN_MAX_AGE"] = 0

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"monitor-test-{os.getpid()}.sqlite3"
        )
    }

# Fast hashing for users the tests make; PBKDF2 (the project's) for users that a
# daphne child must verify a password of.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

# In-process tests render pages without running collectstatic first; the daphne
# processes of the end-to-end tests use the real (manifest) storage.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
