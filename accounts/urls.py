from django.urls import path
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenRefreshView,
    TokenVerifyView,
)

from accounts.views import LoginView

app_name = "accounts"

urlpatterns = [
    path("login", LoginView.as_view(), name="login"),
    path("refresh", TokenRefreshView.as_view(), name="refresh"),
    path("verify", TokenVerifyView.as_view(), name="verify"),
    # Blacklists the refresh token it is given (SimpleJWT's blacklist app).
    path("logout", TokenBlacklistView.as_view(), name="logout"),
]
