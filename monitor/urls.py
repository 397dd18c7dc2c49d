from django.contrib import admin
from django.urls import include, path, re_path

from metrics.pages import HOST_NAME_PATTERN, HostDashboardView
from metrics.views import DashboardView, favicon
from monitor.health import healthz, readyz

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    re_path(
        rf"^hosts/(?P<name>{HOST_NAME_PATTERN})/$",
        HostDashboardView.as_view(),
        name="host-dashboard",
    ),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/metrics/", include("metrics.urls")),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
