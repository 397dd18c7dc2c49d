"""`monitor-agent`: the command line. Flags, where the token comes from, logging;
then the agent itself (agent/service.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent import __version__
from agent.addresses import agent_url
from agent.buffer import DEFAULT_SECONDS
from agent.protocol import INTERVAL_MAX, INTERVAL_MIN
from agent.service import run_agent

# The name of a variable, not a token:
TOKEN_VARIABLE = "MONITOR_AGENT_TOKEN"  # noqa: S105
BUFFER_MAX = 86400.0
# A token travels in an HTTP header: one word of visible ASCII. The server's tokens
# are URL-safe base64 (secrets.token_urlsafe).
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")

logger = logging.getLogger("agent")


@dataclass(frozen=True)
class Options:
    """What the command line asks for, checked."""

    url: str
    token: str = field(repr=False)
    interval: float | None
    buffer: float
    verbose: bool


def seconds_between(minimum: float, maximum: float) -> Callable[[str], float]:
    """An argparse `type`: a number of seconds within bounds, or a clear error."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        # NaN fails the comparison too, so "nan" is refused with the rest.
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds from {minimum:g} to {maximum:g}, "
                f"got {raw!r}"
            )
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line of `monitor-agent`."""
    parser = argparse.ArgumentParser(
        prog="monitor-agent",
        description=(
            "Stream this machine's CPU, memory, network and disk metrics to a "
            "host-monitor server, as the host whose token it holds. Runs until "
            "SIGTERM or Ctrl-C; reconnects by itself."
        ),
        epilog=(
            f"The token comes from --token, --token-file or the variable "
            f"{TOKEN_VARIABLE} ('manage.py hosts add NAME' on the server prints "
            "one). --token shows it to every user of this machine in 'ps': for a "
            "service, prefer the other two. Exit status: 0 when stopped, 2 for bad "
            "flags, 3 when another agent connected with the same token."
        ),
    )
    parser.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="the service's address: http(s)://HOST[:PORT][/PREFIX] or the "
        "socket's own ws(s)://HOST/api/ws/agent",
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="the host's token")
    token.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="a file holding the host's token (readable by this user only)",
    )
    parser.add_argument(
        "--interval",
        type=seconds_between(INTERVAL_MIN, INTERVAL_MAX),
        metavar="S",
        help=f"seconds between live snapshots, {INTERVAL_MIN:g} to {INTERVAL_MAX:g} "
        "(default: the server's METRICS_INTERVAL)",
    )
    parser.add_argument(
        "--buffer",
        type=seconds_between(0, BUFFER_MAX),
        default=float(DEFAULT_SECONDS),
        metavar="SECONDS",
        help="keep this many seconds of snapshots while the server cannot be "
        f"reached, to send once it can (default {DEFAULT_SECONDS}; 0: none)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every attempt and frame"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser


def parse_options(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ
) -> Options:
    """Read the command line; exit with status 2 and a clear message if it is bad."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        url = agent_url(args.server, args.interval)
    except ValueError as error:
        parser.error(f"--server {error}")
    return Options(
        url=url,
        token=read_token(parser, args, environ),
        interval=args.interval,
        buffer=args.buffer,
        verbose=args.verbose,
    )


def read_token(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    environ: Mapping[str, str],
) -> str:
    """The token from --token, --token-file or the environment, in that order."""
    if args.token is not None:
        source, raw = "--token", args.token
    elif args.token_file is not None:
        source = f"--token-file {args.token_file}"
        try:
            raw = args.token_file.read_text(encoding="utf-8")
            mode = args.token_file.stat().st_mode
        except (OSError, UnicodeDecodeError) as error:
            parser.error(f"{source}: cannot read it ({_why(error)})")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "%s can be read by other users; chmod 600 it", args.token_file
            )
    elif TOKEN_VARIABLE in environ:
        source, raw = TOKEN_VARIABLE, environ[TOKEN_VARIABLE]
    else:
        parser.error(
            f"a host token is needed: --token TOKEN, --token-file PATH or "
            f"{TOKEN_VARIABLE} ('manage.py hosts add NAME' on the server prints one)"
        )
    token = raw.strip()
    if not token:
        parser.error(f"{source}: the token is empty")
    if not TOKEN_PATTERN.fullmatch(token):
        # The token is never echoed: it may be a real one with a typo.
        parser.error(
            f"{source}: a token is one word of printable ASCII (no spaces, no other "
            "lines)"
        )
    return token


def main(argv: Sequence[str] | None = None) -> int:
    """Run `monitor-agent`; return its exit status."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    options = parse_options(argv)
    logger.setLevel(logging.DEBUG if options.verbose else logging.INFO)
    return asyncio.run(
        run_agent(options.url, options.token, options.interval, options.buffer)
    )


def _why(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
