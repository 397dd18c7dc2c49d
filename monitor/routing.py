from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from metrics.consumers import MetricsConsumer

websocket_urlpatterns = [
    path("api/ws/metrics", MetricsConsumer.as_asgi()),
    # Any other path: refuse the handshake (HTTP 403) rather than fail with 500.
    re_path(r"", WebsocketDenier.as_asgi()),
]
