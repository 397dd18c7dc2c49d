"""ASGI entry point: Django for HTTP, the authenticated metrics socket otherwise."""

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

from accounts.middleware import JWTAuthMiddlewareStack
from accounts.origins import AllowedHostsOriginCheck
from monitor.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginCheck(
            JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
