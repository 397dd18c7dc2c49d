"""The project's settings, as the test suite runs them.

Every run gets a Redis key prefix of its own, so tests share a Redis server with
anything else without touching its keys, and an on-disk SQLite test database, so
that daphne processes started by the end-to-end tests see the same users.
"""

import os
import tempfile
import uuid

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-key-never-used-in-production")
os.environ["METRICS_REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"

from monitor.settings import *  # noqa: F403
from monitor.settings import DATABASES

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"monitor-test-{os.getpid()}.sqlite3"
        )
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
