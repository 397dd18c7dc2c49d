from django.urls import path

from metrics.views import HistoryView

app_name = "metrics"

urlpatterns = [
    path("history", HistoryView.as_view(), name="history"),
]
