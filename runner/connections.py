"""Which connections a web worker takes, and how long their requests may take to
arrive.

Twisted's HTTP channel closes a connection idle for a minute, but restarts that
timer on every byte, so a client sending its request one byte a second keeps its
connection (and its file descriptor) forever; enough such clients take a worker to
its descriptor limit, and then nobody gets in. daphne's HTTP factory is given three
guards here, through Twisted's public protocol and factory methods:

- A request's line, headers and body must have arrived within
  METRICS_HTTP_HEADER_TIMEOUT seconds, counted from the connection's start (for a
  later request on a kept-alive connection, from the end of the previous response),
  whatever the client sends meanwhile; then the connection is closed.
- One address may hold at most METRICS_MAX_PENDING_PER_IP connections whose request
  has not arrived yet (0: no cap, for a worker behind a proxy); a connection over
  that is closed as soon as it is accepted. The count is this worker's.
- A worker near its descriptor limit (a tenth of it left, at least MIN_SPARE) closes
  new connections as soon as it accepts them, so that those it has keep what they
  need: database and Redis connections, files.

A WebSocket's request is its handshake: once it has arrived the connection belongs
to the socket, which the guards leave alone. HTTP/2 is not offered (daphne offers it
only over TLS with the h2 extra installed; these guards are HTTP/1.1's).
"""

import logging
import os
import resource
import time
from collections import Counter
from pathlib import Path

from daphne.http_protocol import HTTPFactory
from django.conf import settings
from twisted.internet.interfaces import IDelayedCall
from twisted.web import http

logger = logging.getLogger(__name__)

# Descriptors kept for the connections a worker has: a tenth of its limit, at least
# this many (a database connection per thread, Redis, files).
MIN_SPARE = 64
# How often a worker counts its open descriptors (listing /proc/self/fd): every
# second, and up to ten times a second while near the limit.
COUNT_EVERY = 1.0
COUNT_NEAR_LIMIT_EVERY = 0.1
# A refusal is logged at most this often, with how many there were since.
LOG_REFUSALS_EVERY = 60.0
DESCRIPTOR_DIRECTORIES = (Path("/proc/self/fd"), Path("/dev/fd"))


class DescriptorReserve:
    """Whether this process is too near its limit of open file descriptors to
    accept another connection."""

    def __init__(self) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.directory = next((d for d in DESCRIPTOR_DIRECTORIES if d.is_dir()), None)
        self.limit = None if soft == resource.RLIM_INFINITY else soft
        self.ceiling = 0
        if self.limit is not None:
            self.ceiling = self.limit - max(MIN_SPARE, self.limit // 10)
        self.in_use = self.count()
        self.counted_at = time.monotonic()
        # Connections accepted since the last count, each taking a descriptor.
        self.accepted = 0

    def count(self) -> int:
        """Descriptors open now (0 where the platform cannot list them)."""
        if self.directory is None:
            return 0
        # Listing the directory opens one more descriptor, not counted.
        return len(os.listdir(self.directory)) - 1

    @property
    def estimate(self) -> int:
        """Descriptors open: as last counted, with the connections taken since."""
        return self.in_use + self.accepted

    def exhausted(self) -> bool:
        """Whether to refuse a new connection; counts it as open if not."""
        if self.limit is None or self.directory is None:
            return False
        now = time.monotonic()
        since = now - self.counted_at
        near = self.estimate >= self.ceiling
        if since >= COUNT_EVERY or (near and since >= COUNT_NEAR_LIMIT_EVERY):
            self.in_use, self.counted_at, self.accepted = self.count(), now, 0
        if self.estimate >= self.ceiling:
            return True
        self.accepted += 1
        return False


class Refusals:
    """A count of refused connections, logged at most once a minute."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.unlogged = 0
        self.logged_at: float | None = None

    def add(self, *details: object) -> None:
        self.unlogged += 1
        now = time.monotonic()
        if self.logged_at is None or now - self.logged_at >= LOG_REFUSALS_EVERY:
            logger.warning(self.reason, self.unlogged, *details)
            self.unlogged, self.logged_at = 0, now


class ConnectionGuard:
    """One worker's admission of connections, and its count, per address, of those
    whose request has not arrived yet."""

    def __init__(self) -> None:
        self.request_timeout = settings.METRICS_HTTP_HEADER_TIMEOUT
        self.max_pending = settings.METRICS_MAX_PENDING_PER_IP
        self.pending: Counter[str] = Counter()
        self.descriptors = DescriptorReserve()
        self.refused_near_limit = Refusals(
            "Refused %d connection(s): %d of %d file descriptors in use, the rest "
            "kept for the connections already open"
        )
        self.refused_for_address = Refusals(
            "Refused %d connection(s) from %s: it holds %d connections whose request "
            "has not arrived (METRICS_MAX_PENDING_PER_IP)"
        )
        if self.descriptors.limit is not None:
            logger.info(
                "New connections are refused past %d of %d file descriptors",
                self.descriptors.ceiling,
                self.descriptors.limit,
            )

    def admit(self, host: str | None) -> bool:
        """Whether to take a connection just accepted from `host`."""
        if self.descriptors.exhausted():
            reserve = self.descriptors
            self.refused_near_limit.add(reserve.estimate, reserve.limit)
            return False
        if host is not None and 0 < self.max_pending <= self.pending[host]:
            self.refused_for_address.add(host, self.pending[host])
            return False
        return True

    def waiting(self, host: str | None) -> None:
        """A connection from `host` now waits for its request."""
        if host is not None:
            self.pending[host] += 1

    def arrived(self, host: str | None) -> None:
        """A connection from `host` no longer waits (its request came, or it went)."""
        if host is None:
            return
        self.pending[host] -= 1
        if self.pending[host] <= 0:
            del self.pending[host]


class GuardedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel, closed when a request takes too long to arrive."""

    guard: ConnectionGuard
    peer: str | None = None
    # The connection counts among its address's pending ones.
    counted = False
    deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.await_request(count=True)

    def await_request(self, count: bool) -> None:
        """Give the next request METRICS_HTTP_HEADER_TIMEOUT seconds to arrive."""
        self.deadline = self.callLater(self.guard.request_timeout, self.too_slow)
        if count:
            self.guard.waiting(self.peer)
            self.counted = True

    def request_arrived(self) -> None:
        """Stop the clock: the request is in (or the connection is gone)."""
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None
        if self.counted:
            self.counted = False
            self.guard.arrived(self.peer)

    def allContentReceived(self) -> None:
        self.request_arrived()
        super().allContentReceived()

    def requestDone(self, request) -> None:
        # Before Twisted reads a pipelined request already buffered: its arrival
        # stops this clock at once.
        if self.persistent:
            self.await_request(count=False)
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        self.request_arrived()
        super().connectionLost(reason)

    def too_slow(self) -> None:
        """The request did not arrive in time: close the connection."""
        self.deadline = None
        logger.debug(
            "Closing a connection from %s: its request took over %g s",
            self.peer,
            self.guard.request_timeout,
        )
        self.request_arrived()
        self.transport.loseConnection()


class GuardedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, admitting connections through a ConnectionGuard and
    building GuardedHTTPChannels."""

    protocol = GuardedHTTPChannel

    def __init__(self, server) -> None:
        super().__init__(server)
        self.guard = ConnectionGuard()

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)  # None for a unix socket's peer
        if not self.guard.admit(host):
            return None  # Twisted closes the connection at once
        channel = super().buildProtocol(addr)
        channel.guard, channel.peer = self.guard, host
        return channel

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]
