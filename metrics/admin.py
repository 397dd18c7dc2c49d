"""Hosts in the admin, with who may see them; and, on each user's page, the hosts
the user may see (metrics.access)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from metrics import hosts
from metrics.models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    """Hosts: add one (its token shown once), disable, enable, delete, rotate its
    token, choose its viewers (users and groups). The token's digest is never
    shown."""

    list_display = ("name", "enabled", "local", "created_at")
    list_filter = ("enabled", "local")
    search_fields = ("name",)
    exclude = ("token_hash",)
    actions = ("disable_hosts", "enable_hosts", "rotate_tokens")
    filter_horizontal = ("viewers", "viewer_groups")

    def get_fields(self, request: HttpRequest, obj: Host | None = None):
        if obj is None:
            return ("name",)
        return ("name", "enabled", "local", "created_at", "viewers", "viewer_groups")

    def get_readonly_fields(self, request: HttpRequest, obj: Host | None = None):
        if obj is None:
            return ()
        # Renaming would part a host from its history and its agent's token.
        return ("name", "local", "created_at")

    def save_model(self, request, obj: Host, form, change: bool) -> None:
        token = None if change else hosts.assign_token(obj)
        super().save_model(request, obj, form, change)
        if token is not None:
            show_token(request, obj, token)

    @admin.action(description="Disable the selected hosts (their agents are refused)")
    def disable_hosts(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self.set_enabled(request, queryset, False)

    @admin.action(description="Enable the selected hosts")
    def enable_hosts(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self.set_enabled(request, queryset, True)

    @admin.action(
        description="Rotate the token of the selected hosts (the old ones stop working)"
    )
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        for host in queryset:
            token = hosts.rotate_token(host)
            self.log_change(request, host, "Rotated the token.")
            show_token(request, host, token)

    def set_enabled(
        self, request: HttpRequest, queryset: QuerySet[Host], enabled: bool
    ) -> None:
        word = "Enabled" if enabled else "Disabled"
        changed = []
        # One save per host, not update(): each change is announced (metrics.signals).
        for host in queryset:
            if host.enabled != enabled:
                hosts.set_enabled(host, enabled)
                self.log_change(request, host, f"{word}.")
                changed.append(host.name)
        if changed:
            self.message_user(request, f"{word}: {', '.join(changed)}.")
        else:
            self.message_user(request, "No host changed.", messages.INFO)


def show_token(request: HttpRequest, host: Host, token: str) -> None:
    """Show a host's new token, this once."""
    messages.warning(
        request,
        format_html(
            "The agent token of host {}: <code>{}</code> Copy it now: it will not "
            "be shown again. Run the agent with --token and this token.",
            host.name,
            token,
        ),
    )


class VisibleHostsForm(forms.ModelForm):
    """A user's change form with the hosts the user is granted (Host.viewers)."""

    visible_hosts = forms.ModelMultipleChoiceField(
        queryset=Host.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("hosts", is_stacked=False),
        help_text=(
            "Hosts this user may see, besides those granted to their groups "
            "(superusers see every host)."
        ),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["visible_hosts"].initial = self.instance.visible_hosts.all()

    def _save_m2m(self) -> None:
        super()._save_m2m()
        # set(): m2m_changed, so that the change reaches open sockets.
        self.instance.visible_hosts.set(self.cleaned_data["visible_hosts"])


def with_visible_hosts(user_admin: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The user admin registered (accounts.admin), with "Visible hosts" on a user's
    change page."""

    class UserAdmin(user_admin):
        form = type("UserChangeForm", (VisibleHostsForm, user_admin.form), {})
        fieldsets = (
            *user_admin.fieldsets,
            ("Hosts", {"fields": ("visible_hosts",)}),
        )

    return UserAdmin


# accounts registers the user model first (INSTALLED_APPS order); metrics, which
# accounts must not import, adds its hosts to that page.
_user_model = get_user_model()
_user_admin = type(admin.site.get_model_admin(_user_model))
admin.site.unregister(_user_model)
admin.site.register(_user_model, with_visible_hosts(_user_admin))
