"""Hosts and their tokens (metrics.hosts), and the announcement of each change."""

import hashlib
import logging
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis.exceptions import ConnectionError as RedisConnectionError

from core import groups
from metrics import hostevents, hosts
from metrics.models import Host

pytestmark = pytest.mark.django_db

GOOD_NAMES = ["a", "web1", "db-1.example.com", "9", "x" * 63, "a.-b"]
BAD_NAMES = ["", "Web1", "web_1", "-web", ".web", "web 1", "x" * 64, "wéb", "web1\n"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_dns_label_like_names_are_valid(name):
    assert hosts.validate_host_name(name) == name


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 5])
def test_other_names_are_refused_with_the_rule(name):
    with pytest.raises(ValidationError, match="lowercase letters, digits"):
        hosts.validate_host_name(name)


def test_a_new_token_has_32_random_bytes_in_url_safe_base64():
    tokens = {hosts.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(token) == 43
        assert set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_a_new_token_never_begins_with_a_dash():
    # One in 64 would without the rule: `--token -x...` is a flag to argparse.
    assert not [t for t in (hosts.new_token() for _ in range(2000)) if t[0] == "-"]


def test_a_token_is_hashed_with_sha256_hex():
    assert hosts.hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_create_host_stores_only_the_tokens_hash():
    host, token = hosts.create_host("web1")
    stored = Host.objects.get(name="web1")
    assert stored.token_hash == hosts.hash_token(token)
    assert token not in str(Host.objects.values().get(pk=host.pk))
    assert stored.enabled
    assert not stored.local


def test_the_created_hosts_token_authenticates_it():
    host, token = hosts.create_host("web1")
    assert hosts.authenticate_agent(token) == host


@pytest.mark.parametrize("name", BAD_NAMES)
def test_create_host_refuses_a_bad_name(name):
    with pytest.raises(ValidationError, match="Invalid host name"):
        hosts.create_host(name)
    assert not Host.objects.exists()


def test_create_host_refuses_a_duplicate_name_and_keeps_the_first():
    first, token = hosts.create_host("web1")
    with pytest.raises(ValidationError, match="already exists"):
        hosts.create_host("web1")
    assert hosts.authenticate_agent(token) == first
    assert Host.objects.count() == 1


def test_a_wrong_token_authenticates_nobody():
    hosts.create_host("web1")
    assert hosts.authenticate_agent(hosts.new_token()) is None


def test_rotating_a_token_stops_the_old_one_at_once():
    host, old = hosts.create_host("web1")
    new = hosts.rotate_token(host)
    assert new != old
    assert hosts.authenticate_agent(old) is None
    assert hosts.authenticate_agent(new) == host


def test_a_disabled_hosts_token_authenticates_nobody_until_enabled_again():
    host, token = hosts.create_host("web1")
    hosts.set_enabled(host, False)
    assert hosts.authenticate_agent(token) is None
    hosts.set_enabled(host, True)
    assert hosts.authenticate_agent(token) == host


def test_a_removed_hosts_token_authenticates_nobody():
    host, token = hosts.create_host("web1")
    hosts.remove_host(host)
    assert hosts.authenticate_agent(token) is None
    assert not Host.objects.exists()


@pytest.mark.parametrize("token", [None, "", "x" * 201, b"bytes", 42], ids=repr)
def test_an_obviously_invalid_token_is_refused_without_a_query(token):
    hosts.create_host("web1")
    with CaptureQueriesContext(connection) as queries:
        assert hosts.authenticate_agent(token) is None
    assert len(queries) == 0


def test_a_host_without_a_token_cannot_be_authenticated():
    hosts.register_local_host("here")
    # Whatever is sent, nothing hashes to the empty digest a local host holds.
    for token in ("x", " ", "\x00"):
        assert hosts.authenticate_agent(token) is None


def test_register_local_host_creates_a_local_host_without_a_token():
    host = hosts.register_local_host("here")
    assert host.local
    assert host.enabled
    assert host.token_hash == ""


def test_register_local_host_returns_an_existing_host_unchanged():
    host = hosts.register_local_host("here")
    hosts.set_enabled(host, False)
    again = hosts.register_local_host("here")
    assert again.pk == host.pk
    assert not again.enabled
    assert Host.objects.count() == 1


def test_register_local_host_refuses_a_bad_name():
    with pytest.raises(ValidationError, match="Invalid host name"):
        hosts.register_local_host("My_Laptop")


def test_the_model_validates_the_name_as_well():
    with pytest.raises(ValidationError, match="lowercase letters"):
        Host(name="Bad_Name").full_clean()


@pytest.fixture
def announced():
    with mock.patch("metrics.signals.announce_host_change") as announce:
        yield announce


def test_each_change_of_a_host_is_announced_once_committed(
    announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        host, _ = hosts.create_host("web1")
        assert announced.call_count == 0  # not before the commit
    with django_capture_on_commit_callbacks(execute=True):
        hosts.rotate_token(host)
    with django_capture_on_commit_callbacks(execute=True):
        hosts.set_enabled(host, False)
    with django_capture_on_commit_callbacks(execute=True):
        hosts.remove_host(host)
    assert announced.call_args_list == [mock.call("web1")] * 4


def test_a_change_rolled_back_is_not_announced(
    announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        hosts.create_host("web1")
    assert len(callbacks) == 1
    assert announced.call_count == 0


def test_announcing_tells_the_hosts_agent_group_to_recheck():
    layer = mock.Mock()
    layer.group_send = mock.AsyncMock()
    with mock.patch.object(groups, "get_channel_layer", return_value=layer):
        hostevents.announce_host_change("web1")
    layer.group_send.assert_awaited_once_with("agent.web1", {"type": "agent.recheck"})


def test_announcing_logs_a_redis_error_and_does_not_raise(caplog):
    layer = mock.Mock()
    layer.group_send = mock.AsyncMock(side_effect=RedisConnectionError("down"))
    with (
        mock.patch.object(groups, "get_channel_layer", return_value=layer),
        caplog.at_level(logging.WARNING, logger="metrics.hostevents"),
    ):
        hostevents.announce_host_change("web1")
    assert "web1" in caplog.text
    assert "down" in caplog.text
