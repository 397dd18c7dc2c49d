from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from metrics.agents import AgentConsumer
from metrics.consumers import MetricsConsumer
from metrics.fleetconsumers import FleetConsumer

# Agents are programs, not pages: no Origin, and a host token instead of a JWT.
agent_urlpatterns = [
    path("api/ws/agent", AgentConsumer.as_asgi()),
]

# Viewers: pages of ALLOWED_HOSTS and programs, with a user's JWT.
websocket_urlpatterns = [
    path("api/ws/metrics", MetricsConsumer.as_asgi()),
    path("api/ws/fleet", FleetConsumer.as_asgi()),
    # Any other path: refuse the handshake (HTTP 403) rather than fail with 500.
    re_path(r"", WebsocketDenier.as_asgi()),
]
