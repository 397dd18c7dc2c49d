"""The detail page of each host: `/hosts/NAME/`, its live charts."""

from django.http import HttpRequest, HttpResponse
from django.views.generic import TemplateView


class HostDashboardView(TemplateView):
    """The dashboard of one host, named by the page's URL.

    Its script reads the name from the URL and asks the socket and the history for
    that host. The view does not look the name up, so that an anonymous visitor
    learns nothing of which hosts exist; the API says "no such host" only after a
    login.
    """

    template_name = "metrics/dashboard.html"

    def get(self, request: HttpRequest, *args, name: str, **kwargs) -> HttpResponse:
        return super().get(request, *args, **kwargs)
