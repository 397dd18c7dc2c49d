"""ASGI entry point: Django for HTTP; for sockets, the agents' socket, and the
viewers' socket behind the origin check and the JWT middleware."""

import os

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor.settings")
try:
    django_asgi_app = get_asgi_application()
    # Pages would answer 500 for any static file that was not collected.
    from core.staticfiles import check_collected

    check_collected()
except ImproperlyConfigured as error:
    raise SystemExit(f"Configuration error: {error}") from None

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

from accounts.middleware import JWTAuthMiddlewareStack
from accounts.origins import AllowedHostsOriginCheck
from monitor.routing import agent_urlpatterns, websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [
                *agent_urlpatterns,
                re_path(
                    r"",
                    AllowedHostsOriginCheck(
                        JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
                    ),
                ),
            ]
        ),
    }
)
