"""The login view: SimpleJWT's, throttled per client IP and per username."""

from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.throttles import LoginIPThrottle, LoginUsernameThrottle


class LoginView(TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token."""

    # Every POST counts, right or wrong; a refused (429) one does not.
    throttle_classes = (LoginIPThrottle, LoginUsernameThrottle)
