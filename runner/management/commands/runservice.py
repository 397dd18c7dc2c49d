"""Run the whole service on this machine: Redis, web workers and the publisher."""

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from prometheus_client.multiprocess import mark_process_dead

from accounts.management.commands.ensure_admin import Command as EnsureAdmin
from core.bounds import DAPHNE_MAX_MESSAGE_BYTES, Bounds, parse_interval
from core.private_files import write_private
from runner.addresses import Reach, reach
from runner.checks import check_database, check_redis
from runner.embedded_redis import EmbeddedRedis
from runner.supervisor import Child, Supervisor, SupervisorError

# Django's options, which mean nothing to a user of ./run: hidden from its help and
# its error messages (still accepted).
DJANGO_OPTIONS = {
    "--version",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}
# How ./run names itself unless it says otherwise (--run-script).
RUN_SCRIPT = "./run"
# The embedded Redis's URL while the service runs, for `./run manage` (the `run`
# script reads it); removed when the service stops.
EMBEDDED_REDIS_URL_FILE = settings.BASE_DIR / ".redis_url"

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


def script_named_in(argv: list[str]) -> str:
    """How the ./run script was invoked, as it passes it in --run-script."""
    for index, arg in enumerate(argv):
        if arg.startswith("--run-script="):
            return arg.partition("=")[2] or RUN_SCRIPT
        if arg == "--run-script" and index + 1 < len(argv):
            return argv[index + 1]
    return RUN_SCRIPT


class Command(BaseCommand):
    help = (
        "Run the whole service: Redis (embedded unless REDIS_URL is set), --workers "
        "daphne processes sharing one port, and the publisher. Checks Redis and the "
        "database, migrates and creates a first administrator if needed. Ctrl-C "
        "stops everything."
    )
    suppressed_base_arguments = DJANGO_OPTIONS
    # Run in handle() instead: Django's way would add --skip-checks to ./run's flags.
    requires_system_checks = ()
    run_script = RUN_SCRIPT

    def run_from_argv(self, argv: list[str]) -> None:
        self.run_script = script_named_in(argv)
        super().run_from_argv(argv)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.prog = self.run_script
        parser.epilog = (
            f"{self.run_script} manage COMMAND [ARGS]: any manage.py command in the "
            "service's environment, e.g. "
            f"{self.run_script} manage changepassword admin."
        )
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Default 127.0.0.1; 0.0.0.0 for every address of this machine.",
        )
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
        # How the user invoked ./run, which passes it: the banner's hints use it.
        parser.add_argument("--run-script", default=RUN_SCRIPT, help=argparse.SUPPRESS)

    def handle(self, *args, host: str, port: int, workers: int, **options) -> None:
        self.check()
        sock = listening_socket(host, port)
        bound = sock.getsockname()[0]
        names = reach(bound, settings.ALLOWED_HOSTS, settings.ALLOWED_HOSTS_IS_SET)
        env = dict(os.environ)
        if options["interval"]:
            # Every process: the publisher's interval, and agents' default one.
            env["METRICS_INTERVAL"] = f"{options['interval']:g}"
        if names.admitted_for_children:
            env["DJANGO_ALLOWED_HOSTS"] = ",".join(names.allowed_hosts)
        children: list[Child] = []
        with tempfile.TemporaryDirectory(prefix="monitor-") as state:
            if settings.REDIS_URL_IS_SET:
                check_redis(settings.REDIS_URL)
            else:
                redis = EmbeddedRedis(Path(state) / "redis")
                env["REDIS_URL"] = redis.start()
                # `./run manage` reads it, to reach this Redis while it runs.
                write_private(EMBEDDED_REDIS_URL_FILE, env["REDIS_URL"])
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
                check_database()
                administrator = self.prepare()
                metrics = Path(state) / "prometheus"
                metrics.mkdir()
                children += self.service_children(sock, workers, options, env, metrics)
                self.announce(names, port, workers, administrator)
                Supervisor(children).run()
            except SupervisorError as error:
                raise CommandError(str(error)) from None
            finally:
                for child in children:
                    if child.process and child.process.poll() is None:
                        child.process.kill()
                sock.close()
                EMBEDDED_REDIS_URL_FILE.unlink(missing_ok=True)
        self.stdout.write("Stopped.")

    def prepare(self) -> tuple[str, bool]:
        """Migrate, collect static files, and make sure someone can log in: return
        an administrator's name, and whether their password was printed above."""
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        ensure_admin = EnsureAdmin(stdout=self.stdout)
        call_command(ensure_admin, generate=True)
        if ensure_admin.printed_password:
            return ensure_admin.username, True
        return self.administrator_name(), False

    def administrator_name(self) -> str:
        """The first administrator's name (the hint's example), or admin."""
        username = settings.SUPERUSER_USERNAME
        if username:
            return username
        User = get_user_model()
        first = User.objects.filter(is_superuser=True).order_by("pk").first()
        return first.get_username() if first else "admin"

    def service_children(
        self,
        sock: socket.socket,
        workers: int,
        options: dict,
        env: dict[str, str],
        metrics: Path,
    ) -> list[Child]:
        """The daphne workers on the shared socket, then the publisher.

        The workers keep their Prometheus figures in `metrics`, a directory of this
        run's (empty at its start), which a scrape of any of them sums; a worker
        that exits takes its live gauges (open sockets) with it.
        """
        fd = sock.fileno()
        web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}

        def forget_worker(pid: int) -> None:
            mark_process_dead(pid, str(metrics))

        daphne = [sys.executable, "-m", "runner.webserver", "--fd", str(fd)]
        daphne += ["--websocket-max-message-size", str(DAPHNE_MAX_MESSAGE_BYTES)]
        daphne.append("monitor.asgi:application")
        children = [
            Child(
                f"web-{number}", daphne, web_env, pass_fds=(fd,), on_exit=forget_worker
            )
            for number in range(1, workers + 1)
        ]
        publisher = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        publisher.append("publish_metrics")
        children.append(Child("publisher", publisher, env))
        return children

    def announce(
        self, names: Reach, port: int, workers: int, administrator: tuple[str, bool]
    ) -> None:
        """Say where to go and how to log in."""
        username, printed = administrator
        first = names.names[0]
        lines = [
            f"\nHost monitor is running on port {port} with {workers} web worker(s).",
            *(f"  Dashboard: http://{name}:{port}/" for name in names.names),
            f"  Admin:     http://{first}:{port}/admin/",
            f"  Log in:    POST http://{first}:{port}/api/auth/login",
            f"  Stream:    ws://{first}:{port}/api/ws/metrics?token=<access token>",
        ]
        if printed:
            lines.append(f"  Log in as the administrator above ({username!r}).")
        else:
            lines.append("  Log in with an account made before.")
        lines.append(
            f"  Forgot the password? {self.run_script} manage changepassword {username}"
        )
        if names.admitted_for_children and len(names.names) > 1:
            lines.append(
                "  Serving this machine's names as well (DJANGO_ALLOWED_HOSTS="
                f"{','.join(names.allowed_hosts)}); set DJANGO_ALLOWED_HOSTS to "
                "choose them."
            )
        if names.refused:
            lines.append(
                f"  Not admitted by DJANGO_ALLOWED_HOSTS, so answered with HTTP 400: "
                f"{', '.join(names.refused)}. To admit them, set "
                f"DJANGO_ALLOWED_HOSTS={names.allowed_hosts_value()}"
            )
        lines.append("Ctrl-C stops everything.\n")
        self.stdout.write("\n".join(lines))
