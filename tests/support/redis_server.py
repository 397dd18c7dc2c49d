"""Which Redis the test run uses: REDIS_URL, a local server, or an embedded one."""

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

from runner.embedded_redis import EmbeddedRedis

DEFAULT_HOST = ("127.0.0.1", 6379)


def listening(address: tuple[str, int]) -> bool:
    """True when something accepts TCP connections at `address`."""
    try:
        socket.create_connection(address, timeout=0.5).close()
    except OSError:
        return False
    return True


def ensure_test_redis(default: tuple[str, int] = DEFAULT_HOST) -> None:
    """Set REDIS_URL for the run: kept if set, else 127.0.0.1:6379, else embedded."""
    if os.environ.get("REDIS_URL") or listening(default):
        return
    directory = Path(tempfile.mkdtemp(prefix="monitor-test-redis-"))
    server = EmbeddedRedis(directory)
    os.environ["REDIS_URL"] = server.start()
    # Last registered, first run: stop the server, then remove its log and socket.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    atexit.register(server.stop)
