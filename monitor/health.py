"""Liveness and readiness endpoints for load balancers and orchestrators."""

import asyncio
import time

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from core.redis import get_redis
from metrics.store import load_heartbeat

# A readiness probe must answer quickly, even when Redis does not.
REDIS_CHECK_TIMEOUT = 3.0


@csrf_exempt
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process can answer at all."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return str(error)
    return None


@csrf_exempt
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database and Redis answer, else 503; with the publisher's age."""
    checks: dict[str, str] = {}
    database_error = await sync_to_async(_check_database)()
    checks["database"] = "ok" if database_error is None else "unavailable"
    heartbeat = None
    try:
        async with asyncio.timeout(REDIS_CHECK_TIMEOUT):
            await get_redis().ping()
            heartbeat = await load_heartbeat()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError):
        checks["redis"] = "unavailable"
    ready = all(state == "ok" for state in checks.values())
    age = None
    if heartbeat is not None:
        age = round(max(time.time() - heartbeat["at"], 0.0), 1)
    return JsonResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            "publisher_last_tick_age_seconds": age,
        },
        status=200 if ready else 503,
    )
