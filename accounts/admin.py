import math
from typing import ClassVar

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError

from accounts.models import User
from accounts.throttles import check_login_attempt


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, counting each attempt against the same per-IP and
    per-username limits as /api/auth/login (accounts.throttles): past either, even
    the right password is refused until the window has room."""

    error_messages: ClassVar[dict[str, str]] = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many login attempts. Try again in %(seconds)s seconds.",
    }

    def clean(self):
        # The username as posted: the API counts its raw field the same way.
        wait = check_login_attempt(self.request, self.data.get("username"))
        if wait is not None:
            raise ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"seconds": math.ceil(wait)},
            )
        return super().clean()


admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.register(User, UserAdmin)
