"""HTTP views of the metrics app: the hosts, the recent history of a host's
snapshots, the overview page and the icon."""

import json
import re
import time
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from agent.snapshots import format_timestamp
from metrics.access import visible_hosts
from metrics.directory import read_hosts
from metrics.hoststate import load_host_states
from metrics.permissions import CanWatchMetrics
from metrics.store import load_history


class RedisUnavailable(APIException):
    status_code = 503
    default_detail = "Metrics storage is unavailable; try again shortly."
    default_code = "redis_unavailable"


def parse_seconds(raw: str | None, limit: float) -> int:
    """Validate the `seconds` query parameter: a whole number from 1 to `limit`."""
    if raw is None:
        return int(limit)
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= limit:
        raise ValidationError(
            {"seconds": [f"must be a whole number from 1 to {int(limit)}"]}
        )
    return int(raw)


def choose_host(requested: str | None, visible: frozenset[str]) -> str:
    """The host a request names (`?host=`), else the user's default host
    (metrics.directory.Hosts.choose); 404 for an unknown or disabled host or one
    the user may not see, all alike, or when no default can be chosen."""
    host = read_hosts().choose(requested, visible)
    if host is None and requested is None:
        raise NotFound("No host to show; choose one with ?host=NAME.")
    if host is None:
        raise NotFound("No such host.")
    return host


def iso_time(moment: float | None) -> str | None:
    """A wall time as the timestamps are written, or None."""
    if moment is None:
        return None
    return format_timestamp(datetime.fromtimestamp(moment, tz=UTC))


class HostsView(APIView):
    """GET the hosts the user may watch: name, online, last seen, interval, and
    whether the host's clock is off."""

    permission_classes = (IsAuthenticated, CanWatchMetrics)

    def get(self, request: Request) -> HttpResponse:
        names = sorted(visible_hosts(request.user))
        try:
            states = load_host_states(names)
        except (RedisError, OSError):
            raise RedisUnavailable from None
        hosts = [
            {
                "name": name,
                "online": states[name].online,
                "last_seen": iso_time(states[name].last_seen),
                "interval": states[name].interval,
                "clock_skew": states[name].clock_skew,
            }
            for name in names
        ]
        return HttpResponse(json.dumps(hosts), content_type="application/json")


class HistoryView(APIView):
    """GET a host's snapshots of the last `seconds` (default and most: the kept
    history); the host is `?host=NAME`, else the default host."""

    permission_classes = (IsAuthenticated, CanWatchMetrics)

    def get(self, request: Request) -> HttpResponse:
        seconds = parse_seconds(
            request.query_params.get("seconds"), settings.METRICS_HISTORY_SECONDS
        )
        host = choose_host(
            request.query_params.get("host"), visible_hosts(request.user)
        )
        try:
            texts, state = load_history(host, time.time() - seconds)
        except (RedisError, OSError):
            raise RedisUnavailable from None
        interval = state.interval or settings.METRICS_INTERVAL
        head = json.dumps({"interval": interval, "seconds": seconds, "host": host})
        # The snapshots are stored as the JSON clients receive; splice them in as is.
        body = f'{head[:-1]}, "snapshots": [{",".join(texts)}]}}'
        return HttpResponse(body, content_type="application/json")


class OverviewView(TemplateView):
    """The overview, `/`: a login form, then a card per host the user may see (all
    in JavaScript, from the fleet stream).

    The page names no host before a login: the names come with the stream, which
    needs a token.
    """

    template_name = "metrics/overview.html"


ICON = "metrics/favicon.svg"


@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for on pages that name no icon (the admin's):
    the dashboard's icon, under its collected name (so not a permanent redirect)."""
    return HttpResponseRedirect(static(ICON))
