"""Before ./run says it is running: Redis and the database answer, or a clear message.

Each check keeps trying a service that may still be starting until its deadline
(CHECK_WITHIN seconds), then fails naming the variable to fix and the URL it
tried, with any password masked. A SQLite file that cannot be opened will not
open later either, so that check does not wait.
"""

import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError, connections

from core.masking import masked, scrubbed
from core.redis import find_master, make_sync_client
from core.redis_urls import is_sentinel_url

# How long a service may take to answer before ./run gives up on it.
CHECK_WITHIN = 10.0
RETRY_EVERY = 0.5


def check_redis(url: str, within: float = CHECK_WITHIN) -> None:
    """Wait until the Redis at REDIS_URL answers PING (for a Sentinel URL: a
    Sentinel names a live master, and it answers); CommandError after `within`."""
    deadline = time.monotonic() + within

    def ping() -> None:
        timeout = max(min(deadline - time.monotonic(), 2.0), 0.1)
        if is_sentinel_url(url):
            find_master(url, timeout)
        options = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
        client = make_sync_client(url, options)
        try:
            client.ping()
        finally:
            client.close()

    problem = keep_trying(ping, within, (redis.RedisError, OSError))
    if problem is not None:
        raise CommandError(
            f"Cannot reach Redis at REDIS_URL={masked(url)} within {within:g} s: "
            f"{scrubbed(problem, url)}. Start it or correct REDIS_URL, or unset "
            "REDIS_URL to let ./run start a Redis of its own."
        )


def check_database(within: float = CHECK_WITHIN) -> None:
    """Wait until the database answers a query; CommandError after `within`."""
    url = settings.DATABASE_URL
    sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")

    def query() -> None:
        connection = connections["default"]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connection.close()

    problem = keep_trying(query, within, (DatabaseError,), retry=not sqlite)
    if problem is None:
        return
    where = (
        f"DATABASE_URL={masked(url)}"
        if settings.DATABASE_URL_IS_SET
        else f"DATABASE_URL (unset, so {url})"
    )
    if sqlite:
        raise CommandError(
            f"Cannot open the database at {where}: {problem}. Correct DATABASE_URL, "
            "or make its directory exist and writable."
        )
    raise CommandError(
        f"Cannot reach the database at {where} within {within:g} s: "
        f"{scrubbed(problem, url)}. Start it or correct DATABASE_URL."
    )


def keep_trying(
    attempt: Callable[[], None],
    within: float,
    errors: tuple[type[BaseException], ...],
    retry: bool = True,
) -> str | None:
    """Run `attempt` until it succeeds (None) or `within` seconds pass (the last
    error, as text)."""
    deadline = time.monotonic() + within
    while True:
        outcome = attempt_once(attempt, errors, deadline - time.monotonic())
        if outcome is None:
            return None
        if not retry or time.monotonic() + RETRY_EVERY > deadline:
            return outcome
        time.sleep(RETRY_EVERY)


def attempt_once(
    attempt: Callable[[], None],
    errors: tuple[type[BaseException], ...],
    seconds: float,
) -> str | None:
    """Run `attempt` in a thread for at most `seconds`: None if it succeeded, else
    what went wrong. A thread, so that an attempt that hangs (a database host that
    drops packets) cannot keep ./run past its deadline."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            attempt()
        except errors as error:
            outcome.append(str(error).strip().rstrip(".") or type(error).__name__)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(max(seconds, 0.05))
    return outcome[0] if outcome else "no answer"
