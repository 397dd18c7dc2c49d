from django.urls import path

from metrics.consumers import MetricsConsumer

websocket_urlpatterns = [
    path("api/ws/metrics", MetricsConsumer.as_asgi()),
]
