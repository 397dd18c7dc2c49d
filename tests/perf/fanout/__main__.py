"""The load tool's command line: `python -m tests.perf.fanout`, from the project root.

Bad flags exit 2 with argparse's message; any other failure is one line on stderr
and exit 1 (130 if interrupted), after every child process was stopped.
"""

import argparse
import asyncio
import json
import logging
import math
import sys

import tests.perf.fanout
from core.redis_urls import is_sentinel_url, parse_sentinel_url
from tests.perf.fanout import FanoutError
from tests.perf.fanout.runs import ALL_TARGETS, run_until_signalled

PROG = "python -m tests.perf.fanout"

# The limits runservice and publish_metrics put on their flags, repeated so that
# parsing ours needs no Django settings.
MAX_WORKERS = 64
MIN_INTERVAL = 0.5
MAX_INTERVAL = 3600.0
MAX_CLIENTS = 100_000
MAX_BROADCASTS = 10_000
MAX_CLIENT_PROCESSES = 64
MAX_HOSTS = 1000
MAX_GRANT_SETS = 100


def bounded_int(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {raw!r}")
        return value

    return parse


def bounded_seconds(low: float, high: float):
    """An argparse type: a finite number of seconds from `low` to `high`."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be {low:g} to {high:g} seconds, got {raw!r}"
            )
        return value

    return parse


def redis_url(raw: str) -> str:
    """An argparse type: a redis://, rediss:// or unix:// URL, or Sentinels'."""
    if is_sentinel_url(raw):
        try:
            parse_sentinel_url(raw)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{error}, got {raw!r}") from None
    elif not raw.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(
            "must be a redis://, rediss:// or unix:// URL, or a redis+sentinel:// "
            f"or rediss+sentinel:// URL, got {raw!r}"
        )
    return raw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line (errors exit 2 with argparse's message)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=tests.perf.fanout.__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--clients",
        type=bounded_int(1, MAX_CLIENTS),
        default=1000,
        help="WebSocket clients per target (default: 1000)",
    )
    parser.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        default=1,
        help="the service's daphne workers (runservice --workers; default: 1)",
    )
    parser.add_argument(
        "--interval",
        type=bounded_seconds(MIN_INTERVAL, MAX_INTERVAL),
        default=1.0,
        help="seconds between broadcasts, both targets (default: 1)",
    )
    parser.add_argument(
        "--broadcasts",
        type=bounded_int(1, MAX_BROADCASTS),
        default=10,
        help="broadcasts measured after the warm-up (default: 10)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=bounded_seconds(0.1, 600),
        default=30.0,
        help="seconds each client may take to connect (default: 30)",
    )
    parser.add_argument(
        "--only",
        choices=ALL_TARGETS,
        help="measure one target only (no ratios); hosts needs --hosts, "
        "fleet needs --fleet",
    )
    parser.add_argument(
        "--hosts",
        type=bounded_int(1, MAX_HOSTS),
        help="N hosts, each fed by a simulated agent, the clients spread over them; "
        "measured after the single-host service with the same clients and workers "
        "(instead of bare and service)",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="with --hosts: the clients watch the fleet stream (/api/ws/fleet) as "
        "users of --grant-sets distinct grant sets over the hosts; measured after "
        "the single-host service with the same clients and workers",
    )
    parser.add_argument(
        "--grant-sets",
        type=bounded_int(1, MAX_GRANT_SETS),
        default=10,
        help="--fleet: distinct sets of visible hosts, one user each (default: 10)",
    )
    parser.add_argument(
        "--compress",
        action="store_true",
        help="measure the service with plain clients, then with clients offering "
        "permessage-deflate, as browsers do (instead of bare and service)",
    )
    parser.add_argument(
        "--redis-url",
        type=redis_url,
        help="Redis for the service (default: 127.0.0.1:6379 if it answers, "
        "else an embedded redis-server)",
    )
    parser.add_argument(
        "--client-processes",
        type=bounded_int(1, MAX_CLIENT_PROCESSES),
        default=1,
        help="processes the clients are spread over (default: 1)",
    )
    args = parser.parse_args(argv)
    if args.client_processes > args.clients:
        parser.error("--client-processes must not exceed --clients")
    if args.hosts is not None and args.hosts > args.clients:
        parser.error("--hosts must not exceed --clients (each host needs a viewer)")
    if args.only == "hosts" and (args.hosts is None or args.fleet):
        parser.error("--only hosts needs --hosts and no --fleet")
    if args.fleet and args.hosts is None:
        parser.error("--fleet needs --hosts")
    if args.only == "fleet" and not args.fleet:
        parser.error("--only fleet needs --fleet")
    if args.fleet and args.grant_sets > args.hosts:
        parser.error("--grant-sets must not exceed --hosts (each set is distinct)")
    if args.only in ("bare", "deflate") and args.hosts is not None:
        parser.error(f"--only {args.only} cannot be used with --hosts")
    if args.compress and (args.hosts is not None or args.only):
        parser.error("--compress cannot be used with --hosts or --only")
    return args


def main() -> None:
    """Parse the command line, run the tool and print its JSON line."""
    args = parse_args()
    # A handler of our own: django.setup() (for the tokens) reconfigures the root.
    # "tests": the tool's modules and the tests/support helpers it uses.
    logger = logging.getLogger("tests")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        report = asyncio.run(run_until_signalled(args))
    except FanoutError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write(f"{PROG}: error: interrupted; children stopped\n")
        sys.exit(130)
    except Exception as error:  # one line, no traceback, as for the expected ones
        message = " ".join(str(error).split())
        sys.stderr.write(f"{PROG}: error: {type(error).__name__}: {message}\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(report) + "\n")
    errors = [(report.get(name) or {}).get("error") for name in ALL_TARGETS]
    errors = [error for error in errors if error]
    if errors:
        sys.stderr.write(f"{PROG}: error: {'; '.join(errors)}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
