"""The dashboard's pages by host: `/hosts/NAME/` is the page `/` serves, for NAME."""

from django.http import HttpRequest, HttpResponse

from metrics.views import DashboardView


class HostDashboardView(DashboardView):
    """The dashboard of one host, named by the page's URL.

    The page is the same as `/`'s: its script reads the name from the URL and asks
    the socket and the history for that host. The view does not look the name up,
    so that an anonymous visitor learns nothing of which hosts exist; the API says
    "no such host" only after a login.
    """

    def get(self, request: HttpRequest, *args, name: str, **kwargs) -> HttpResponse:
        return super().get(request, *args, **kwargs)
