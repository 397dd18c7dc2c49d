"""Run the whole service on this machine: Redis, web workers and the publisher."""

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.bounds import DAPHNE_MAX_MESSAGE_BYTES, Bounds, parse_interval
from runner.embedded_redis import EmbeddedRedis
from runner.supervisor import Child, Supervisor, SupervisorError

MAX_WORKERS = 64
parse_workers = Bounds(1, MAX_WORKERS).argument(whole=True)
parse_port = Bounds(1, 65535).argument(whole=True)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind the socket every daphne worker accepts on (passed to them with --fd)."""
    try:
        info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        # daphne adopts a shared socket as IPv4 only (its fd: endpoint).
        raise CommandError(
            f"Cannot use --host {host!r}: {error.strerror}; give an IPv4 address "
            "or name (put an IPv6-capable proxy in front for IPv6)."
        ) from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as error:
        sock.close()
        raise CommandError(
            f"Cannot listen on {host}:{port} ({error.strerror}); "
            "choose another with --port or --host."
        ) from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Command(BaseCommand):
    help = (
        "Run the whole service: Redis (embedded unless REDIS_URL is set), --workers "
        "daphne processes sharing one port, and the publisher. Migrates and creates "
        "a first administrator if needed. Ctrl-C stops everything."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Default 127.0.0.1.")
        parser.add_argument(
            "--port", type=parse_port, default=8000, help="Default 8000."
        )
        parser.add_argument(
            "--workers",
            type=parse_workers,
            default=os.cpu_count() or 1,
            help="Daphne processes (default: the number of CPUs).",
        )
        parser.add_argument(
            "--interval",
            type=parse_interval,
            default=None,
            help="Seconds between snapshots (default: METRICS_INTERVAL).",
        )

    def handle(self, *args, host: str, port: int, workers: int, **options) -> None:
        sock = listening_socket(host, port)
        env = dict(os.environ)
        children: list[Child] = []
        with tempfile.TemporaryDirectory(prefix="monitor-") as state:
            if not settings.REDIS_URL_IS_SET:
                redis = EmbeddedRedis(Path(state) / "redis")
                env["REDIS_URL"] = redis.start()
                children.append(
                    Child(
                        "redis-server",
                        redis.command(),
                        env,
                        stop_last=True,
                        process=redis.process,
                    )
                )
                self.stdout.write(
                    "Started an embedded Redis (set REDIS_URL to use yours)."
                )
            try:
                self.prepare()
                children += self.service_children(sock, workers, options, env)
                self.announce(host, port, workers)
                Supervisor(children).run()
            except SupervisorError as error:
                raise CommandError(str(error)) from None
            finally:
                for child in children:
                    if child.process and child.process.poll() is None:
                        child.process.kill()
                sock.close()
        self.stdout.write("Stopped.")

    def prepare(self) -> None:
        """Migrate, collect static files, and make sure someone can log in."""
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("ensure_admin", generate=True, stdout=self.stdout)

    def service_children(
        self, sock: socket.socket, workers: int, options: dict, env: dict[str, str]
    ) -> list[Child]:
        """The daphne workers on the shared socket, then the publisher."""
        fd = sock.fileno()
        daphne = [sys.executable, "-m", "runner.webserver", "--fd", str(fd)]
        daphne += ["--websocket-max-message-size", str(DAPHNE_MAX_MESSAGE_BYTES)]
        daphne.append("monitor.asgi:application")
        children = [
            Child(f"web-{number}", daphne, env, pass_fds=(fd,))
            for number in range(1, workers + 1)
        ]
        publisher = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        publisher.append("publish_metrics")
        if options["interval"]:
            publisher += ["--interval", str(options["interval"])]
        children.append(Child("publisher", publisher, env))
        return children

    def announce(self, host: str, port: int, workers: int) -> None:
        shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104
        self.stdout.write(
            f"\nHost monitor is running on {shown}:{port} "
            f"with {workers} web worker(s).\n"
            f"  Dashboard: http://{shown}:{port}/\n"
            f"  Admin:     http://{shown}:{port}/admin/\n"
            "  Log in as the administrator above, or as any account you made before\n"
            "  (forgot the password? python manage.py changepassword admin).\n"
            f"  Log in:    POST http://{shown}:{port}/api/auth/login\n"
            f"  Stream:    ws://{shown}:{port}/api/ws/metrics?token=<access token>\n"
            "Ctrl-C stops everything.\n"
        )
