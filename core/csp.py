"""A Content-Security-Policy on every response: the pages load only their own files.

No inline script or style, no other origin's files, no framing, forms posting only
here; scripts may open connections to this origin only, the WebSocket included
(`ws://` and `wss://` to the host the page came from, named explicitly: `'self'` does
not cover WebSocket schemes in every browser). The dashboard and the admin need
nothing more.
"""

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"
POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def policy_for(request: HttpRequest) -> str:
    """The policy of a response to `request`."""
    connect = ["'self'"]
    try:
        host = request.get_host()
    except DisallowedHost:
        host = None  # Django answers 400; that page needs no socket
    if host:
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join([*POLICY, f"connect-src {' '.join(connect)}"])


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sets the policy on every response that has none of its own (in synchronous
    and asynchronous requests alike, as Django's own middleware do)."""

    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        if HEADER not in response:
            response[HEADER] = policy_for(request)
        return response
