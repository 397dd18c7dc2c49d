"""/metrics: the service's figures and the hosts' in Prometheus's text format.

Only for `Authorization: Bearer <METRICS_PROMETHEUS_TOKEN>`: 404 while that setting
is unset (the endpoint does not exist), 401 for any other token. The service's own
metrics (core.instruments) are this machine's web workers' summed
(PROMETHEUS_MULTIPROC_DIR) or this process's; the hosts' gauges are read from Redis
(metrics.hostgauges), the same from every worker. docs/metrics.md lists them.
"""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from core.scopes import bearer_credentials
from metrics.directory import read_hosts
from metrics.hostgauges import HostCollector

logger = logging.getLogger(__name__)


def service_registry() -> CollectorRegistry:
    """A registry of the service's own metrics: every worker's on this machine
    (summed from their files), else this process's."""
    registry = CollectorRegistry(auto_describe=False)
    if settings.PROMETHEUS_MULTIPROC_DIR:
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry.register(REGISTRY)
    return registry


def host_collector() -> HostCollector | None:
    """The hosts' gauges now; None (and a warning) if the database (the hosts) or
    Redis (their snapshots) cannot be read: the service's own figures still go."""
    try:
        return HostCollector(sorted(read_hosts().enabled))
    except (DatabaseError, RedisError, OSError) as error:
        logger.warning("No host gauges for /metrics: %s", error)
        return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Answer a Prometheus scrape; 404 unless a token is set, 401 if not it."""
    expected = settings.METRICS_PROMETHEUS_TOKEN
    if not expected:
        raise Http404
    if not hmac.compare_digest(
        bearer_credentials(request.headers.get("Authorization", "")).encode(),
        expected.encode(),
    ):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = service_registry()
    hosts = host_collector()
    if hosts is not None:
        registry.register(hosts)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
