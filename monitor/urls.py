from django.contrib import admin
from django.urls import include, path, re_path

from core.hostnames import HOST_NAME_PATTERN
from metrics.exposition import metrics_view
from metrics.pages import HostDashboardView
from metrics.views import HostsView, OverviewView, favicon
from monitor.health import healthz, readyz

urlpatterns = [
    path("", OverviewView.as_view(), name="overview"),
    re_path(
        rf"^hosts/(?P<name>{HOST_NAME_PATTERN})/$",
        HostDashboardView.as_view(),
        name="host-dashboard",
    ),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/metrics/", include("metrics.urls")),
    path("api/hosts", HostsView.as_view(), name="hosts"),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
