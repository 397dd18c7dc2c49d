"""Hosts in the admin: add (the token shown once), disable, enable, rotate, delete;
who sees a host, on its page and on a user's."""

import re
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group

from accounts.models import User
from metrics import hosts
from metrics.models import Host

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/metrics/host/"
ADD = "/admin/metrics/host/add/"
TOKEN = re.compile(r"<code>([A-Za-z0-9_-]{43})</code>")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def tokens_in(response) -> list[str]:
    return TOKEN.findall(response.content.decode())


def act(admin_client, action: str, *found: Host):
    return admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [host.pk for host in found]},
        follow=True,
    )


def test_the_hosts_are_listed_with_name_state_kind_and_creation(admin_client):
    hosts.create_host("web1")
    hosts.register_local_host("here")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    text = response.content.decode()
    for part in ("web1", "here", "Enabled", "Local", "Created at"):
        assert part in text


def test_the_add_form_asks_for_a_name_only(admin_client):
    response = admin_client.get(ADD)
    assert response.status_code == 200
    fields = set(response.context["adminform"].form.fields)
    assert fields == {"name"}


def test_adding_a_host_shows_its_token_once(admin_client):
    response = admin_client.post(ADD, {"name": "web1"}, follow=True)
    assert response.status_code == 200
    [token] = tokens_in(response)
    assert hosts.authenticate_agent(token) == Host.objects.get(name="web1")
    assert "will not be shown again" in response.content.decode()
    again = admin_client.get(CHANGELIST)
    assert token not in again.content.decode()


@pytest.mark.parametrize("name", ["Web1", "web_1", "-web", "x" * 64])
def test_adding_a_host_with_a_bad_name_shows_the_rule(admin_client, name):
    response = admin_client.post(ADD, {"name": name})
    assert response.status_code == 200
    assert "lowercase letters, digits" in response.content.decode()
    assert not Host.objects.exists()


def test_adding_a_duplicate_host_is_refused(admin_client):
    hosts.create_host("web1")
    response = admin_client.post(ADD, {"name": "web1"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Host.objects.count() == 1


def test_the_token_digest_is_never_shown_or_editable(admin_client):
    host, _ = hosts.create_host("web1")
    page = admin_client.get(f"{CHANGELIST}{host.pk}/change/")
    assert page.status_code == 200
    assert host.token_hash not in page.content.decode()
    assert "token_hash" not in page.content.decode()
    admin_client.post(
        f"{CHANGELIST}{host.pk}/change/",
        {"enabled": "on", "token_hash": "0" * 64},
    )
    host.refresh_from_db()
    assert host.token_hash != "0" * 64


def test_the_change_form_can_disable_a_host_but_not_rename_it(admin_client):
    host, token = hosts.create_host("web1")
    response = admin_client.post(
        f"{CHANGELIST}{host.pk}/change/", {"name": "other"}, follow=True
    )
    assert response.status_code == 200
    host.refresh_from_db()
    assert host.name == "web1"
    assert not host.enabled
    assert hosts.authenticate_agent(token) is None


def test_the_rotate_action_shows_a_new_token_once_and_ends_the_old(admin_client):
    host, old = hosts.create_host("web1")
    response = act(admin_client, "rotate_tokens", host)
    [new] = tokens_in(response)
    assert new != old
    assert hosts.authenticate_agent(old) is None
    assert hosts.authenticate_agent(new) == host
    assert new not in admin_client.get(CHANGELIST).content.decode()
    assert LogEntry.objects.filter(change_message="Rotated the token.").exists()


def test_the_disable_and_enable_actions_switch_the_token_off_and_on(admin_client):
    host, token = hosts.create_host("web1")
    other, _ = hosts.create_host("web2")
    response = act(admin_client, "disable_hosts", host, other)
    assert "Disabled: web1, web2." in response.content.decode()
    assert hosts.authenticate_agent(token) is None
    assert not Host.objects.filter(enabled=True).exists()
    act(admin_client, "enable_hosts", host)
    assert hosts.authenticate_agent(token) == host


def test_deleting_a_host_ends_its_token(admin_client):
    host, token = hosts.create_host("web1")
    response = admin_client.post(
        f"{CHANGELIST}{host.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert not Host.objects.exists()
    assert hosts.authenticate_agent(token) is None


def test_the_delete_action_deletes_the_selected_hosts(admin_client):
    host, _ = hosts.create_host("web1")
    kept, _ = hosts.create_host("web2")
    admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [host.pk], "post": "yes"},
    )
    assert list(Host.objects.all()) == [kept]


def test_a_user_who_is_not_staff_cannot_reach_the_hosts(client, user):
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- who sees the host: on the host's page and on the user's ------------------------


@pytest.fixture
def announced(transactional_db):
    """The access events announced, each once its change is committed."""
    events: list[dict] = []
    with mock.patch("metrics.grants.send_to_group", lambda _, e: events.append(e)):
        yield events


@pytest.fixture
def bob(transactional_db):
    return User.objects.create_user(username="bob", password="unused-here")


@pytest.fixture
def ops(transactional_db):
    return Group.objects.create(name="ops")


def user_form(user, **fields) -> dict:
    """The posted change form of a user, as it stands, with `fields` changed."""
    data = {
        "username": user.username,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    return {**data, **fields}


def test_the_host_page_chooses_its_viewers_and_viewer_groups(
    admin_client, bob, ops, announced
):
    events = announced
    host, _ = hosts.create_host("web1")
    carol = User.objects.create_user(username="carol")
    carol.groups.add(ops)
    events.clear()
    page = admin_client.get(f"{CHANGELIST}{host.pk}/change/")
    fields = page.context["adminform"].form.fields
    assert {"viewers", "viewer_groups"} <= set(fields)
    response = admin_client.post(
        f"{CHANGELIST}{host.pk}/change/",
        {"enabled": "on", "viewers": [bob.pk], "viewer_groups": [ops.pk]},
    )
    assert response.status_code == 302
    assert list(host.viewers.all()) == [bob]
    assert list(host.viewer_groups.all()) == [ops]
    # Each grant is announced, naming the users it concerns.
    named = {tuple(event["user_ids"] or ()) for event in events}
    assert {(str(bob.pk),), (str(carol.pk),)} <= named
    events.clear()
    admin_client.post(f"{CHANGELIST}{host.pk}/change/", {"enabled": "on"})
    assert not host.viewers.exists()
    assert not host.viewer_groups.exists()
    named = {tuple(event["user_ids"] or ()) for event in events}
    assert {(str(bob.pk),), (str(carol.pk),)} <= named


def test_the_user_page_chooses_the_hosts_the_user_sees(admin_client, bob, announced):
    events = announced
    web1, _ = hosts.create_host("web1")
    hosts.create_host("web2")
    events.clear()
    change = f"/admin/accounts/user/{bob.pk}/change/"
    page = admin_client.get(change)
    assert "Visible hosts" in page.content.decode()
    response = admin_client.post(change, user_form(bob, visible_hosts=[web1.pk]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(bob.visible_hosts.all()) == [web1]
    assert {"type": "access.changed", "user_ids": [str(bob.pk)], "hosts": ["web1"]} in (
        events
    )
    page = admin_client.get(change)
    assert page.context["adminform"].form["visible_hosts"].value() == [web1.pk]
    events.clear()
    admin_client.post(change, user_form(bob))
    assert not bob.visible_hosts.exists()
    assert {"type": "access.changed", "user_ids": [str(bob.pk)], "hosts": ["web1"]} in (
        events
    )


def test_a_group_joined_or_left_on_the_user_page_is_announced(
    admin_client, bob, ops, announced
):
    events = announced
    change = f"/admin/accounts/user/{bob.pk}/change/"
    admin_client.post(change, user_form(bob, groups=[ops.pk]))
    assert list(bob.groups.all()) == [ops]
    mine = {"type": "access.changed", "user_ids": [str(bob.pk)], "hosts": None}
    assert mine in events
    events.clear()
    admin_client.post(change, user_form(bob))
    assert not bob.groups.exists()
    assert mine in events
