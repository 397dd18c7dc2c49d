"""The login view: SimpleJWT's, throttled per client IP and per username."""

from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.throttles import LoginIPThrottle, LoginUsernameThrottle
from core import instruments


class LoginView(TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token."""

    # Every POST counts, right or wrong; a refused (429) one does not.
    throttle_classes = (LoginIPThrottle, LoginUsernameThrottle)

    def finalize_response(self, request, response, *args, **kwargs):
        """Count the login by its outcome (core.instruments), throttled ones too."""
        if request.method == "POST":
            instruments.login_answered(response.status_code)
        return super().finalize_response(request, response, *args, **kwargs)
