"""ASGI entry point: Django for HTTP, the authenticated metrics socket otherwise."""

import functools
import os

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor.settings")
try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as error:
    raise SystemExit(f"Configuration error: {error}") from None

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from accounts.middleware import JWTAuthMiddlewareStack
from monitor.routing import websocket_urlpatterns


def remember_answers(validator):
    """Make an OriginValidator remember its answer for each Origin it has seen.

    Channels parses every allowed host pattern again on every handshake, a
    tenth of a connect's cost here; the answer for one Origin never changes.
    """
    validator.valid_origin = functools.lru_cache(maxsize=1024)(validator.valid_origin)
    return validator


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": remember_answers(
            AllowedHostsOriginValidator(
                JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            )
        ),
    }
)
