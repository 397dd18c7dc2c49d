"""SimpleJWT's serializers, mended where they fail with a 500."""

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer


class RefreshSerializer(TokenRefreshSerializer):
    """A refresh token of a deleted user is refused with 401, not a 500.

    (SimpleJWT 5.5.1 looks the user up without handling DoesNotExist.)
    """

    def validate(self, attrs):
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            ) from None
