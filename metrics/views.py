"""HTTP views of the metrics app: the recent history of snapshots, the dashboard
and its icon."""

import json
import re
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

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


class HistoryView(APIView):
    """GET the snapshots of the last `seconds` (default and most: the kept history)."""

    permission_classes = (IsAuthenticated, CanWatchMetrics)

    def get(self, request: Request) -> HttpResponse:
        seconds = parse_seconds(
            request.query_params.get("seconds"), settings.METRICS_HISTORY_SECONDS
        )
        try:
            texts, beat = load_history(time.time() - seconds)
        except (RedisError, OSError):
            raise RedisUnavailable from None
        interval = beat["interval"] if beat else settings.METRICS_INTERVAL
        host = beat["host"] if beat else ""
        head = json.dumps({"interval": interval, "seconds": seconds, "host": host})
        # The snapshots are stored as the JSON clients receive; splice them in as is.
        body = f'{head[:-1]}, "snapshots": [{",".join(texts)}]}}'
        return HttpResponse(body, content_type="application/json")


class DashboardView(TemplateView):
    """The browser dashboard: a login form, then live charts (all in JavaScript).

    The page says nothing of the host before a login: its name comes with the
    history, which needs a token.
    """

    template_name = "metrics/dashboard.html"


ICON = "metrics/favicon.svg"


@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for on pages that name no icon (the admin's):
    the dashboard's icon, under its collected name (so not a permanent redirect)."""
    return HttpResponseRedirect(static(ICON))
