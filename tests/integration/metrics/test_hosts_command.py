"""`manage.py hosts`: add, rotate, disable, enable, remove and list hosts, grant
and revoke who sees them, through call_command and as a real process."""

import io
import sys
import time
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from redis.exceptions import ConnectionError as RedisConnectionError

from core.keys import redis_key
from metrics import hosts
from metrics.models import Host
from tests.support.children import free_port
from tests.support.processes import run_to_end, service_env

MANAGE = [sys.executable, "manage.py", "hosts"]


def run(*args: str, **options) -> tuple[str, str]:
    """call_command('hosts', *args); return its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("hosts", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@pytest.mark.django_db
class TestCallCommand:
    def test_add_prints_the_token_alone_on_the_last_line(self):
        out, err = run("add", "web1")
        token = last_line(out)
        assert hosts.authenticate_agent(token) == Host.objects.get(name="web1")
        assert "Created host web1" in err
        assert "--token" in err

    def test_add_at_verbosity_0_prints_the_token_only(self):
        out, err = run("add", "web1", verbosity=0)
        assert hosts.authenticate_agent(out.strip()).name == "web1"
        assert err == ""

    @pytest.mark.parametrize("name", ["Web1", "web_1", "-web", "x" * 64])
    def test_add_refuses_a_bad_name_naming_the_rule(self, name):
        with pytest.raises(CommandError, match="lowercase letters, digits"):
            run("add", "--", name)
        assert not Host.objects.exists()

    def test_add_refuses_a_duplicate_name(self):
        run("add", "web1")
        with pytest.raises(CommandError, match="already exists"):
            run("add", "web1")

    def test_rotate_prints_a_new_token_and_the_old_one_stops_working(self):
        old = last_line(run("add", "web1")[0])
        out, err = run("rotate", "web1")
        new = last_line(out)
        assert new != old
        assert hosts.authenticate_agent(old) is None
        assert hosts.authenticate_agent(new).name == "web1"
        assert "old one no longer works" in err

    def test_disable_and_enable_switch_the_hosts_token_off_and_on(self):
        token = last_line(run("add", "web1")[0])
        _, err = run("disable", "web1")
        assert "disabled" in err
        assert hosts.authenticate_agent(token) is None
        assert not Host.objects.get(name="web1").enabled
        run("enable", "web1")
        assert hosts.authenticate_agent(token).name == "web1"

    def test_disabling_a_disabled_host_says_so(self):
        run("add", "web1")
        run("disable", "web1")
        _, err = run("disable", "web1")
        assert "already disabled" in err

    def test_remove_deletes_the_host(self):
        token = last_line(run("add", "web1")[0])
        run("remove", "web1")
        assert not Host.objects.exists()
        assert hosts.authenticate_agent(token) is None

    @pytest.mark.parametrize("subcommand", ["rotate", "disable", "enable", "remove"])
    def test_an_unknown_host_is_a_command_error(self, subcommand):
        with pytest.raises(CommandError, match="No host named 'ghost'"):
            run(subcommand, "ghost")

    @pytest.mark.parametrize("subcommand", ["rotate", "disable", "enable", "remove"])
    def test_a_bad_name_is_a_command_error_naming_the_rule(self, subcommand):
        with pytest.raises(CommandError, match="lowercase letters"):
            run(subcommand, "Ghost")

    def test_list_says_when_there_are_no_hosts(self):
        out, err = run("list")
        assert out == ""
        assert "hosts add NAME" in err

    def test_list_shows_name_state_kind_and_never_seen(self, clean_redis):
        run("add", "web1")
        run("disable", "web1")
        hosts.register_local_host("here")
        out, _ = run("list")
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "STATE", "KIND", "ONLINE", "LAST", "SEEN"]
        assert lines[1].split() == ["here", "enabled", "local", "no", "never"]
        assert lines[2].split() == ["web1", "disabled", "agent", "no", "never"]

    def test_list_shows_when_a_host_was_last_seen_from_redis(self, clean_redis):
        run("add", "web1")
        seen = time.time() - 1
        clean_redis.hset(
            redis_key("host", "web1", "state"),
            mapping={
                "last_seen": seen,
                "interval": 2,
                "live": 1,
                "sender": "x",
                "lease": time.time() + 60,
            },
        )
        out, _ = run("list")
        expected = datetime.fromtimestamp(seen, UTC).isoformat(timespec="seconds")
        row = out.splitlines()[1].split()
        assert row == ["web1", "enabled", "agent", "yes", expected[:-6] + "Z"]

    def test_list_says_a_connected_host_has_sent_no_snapshot_yet(self, clean_redis):
        run("add", "web1")
        clean_redis.hset(
            redis_key("host", "web1", "state"),
            mapping={
                "interval": 2,
                "live": 0,
                "sender": "x",
                "lease": time.time() + 60,
            },
        )
        out, _ = run("list")
        row = out.splitlines()[1].split()
        assert row == ["web1", "enabled", "agent", "yes", "no", "snapshot", "yet"]

    def test_list_works_when_redis_is_down_saying_last_seen_is_unknown(self):
        run("add", "web1")
        down = mock.patch(
            "metrics.management.commands.hosts.load_host_states",
            side_effect=RedisConnectionError("refused"),
        )
        with down:
            out, err = run("list")
        assert "web1" in out
        assert "unknown (Redis unreachable)" in out
        assert "Redis did not answer" in err


@pytest.fixture
def viewers(transactional_db):
    """The host web1 and its would-be viewers: bob, and ops (with carol in it)."""
    users = get_user_model().objects
    ops = Group.objects.create(name="ops")
    users.create_user("carol").groups.add(ops)
    return hosts.create_host("web1")[0], users.create_user("bob"), ops


@pytest.fixture
def announced(viewers):
    """The access events the test's changes announce (each once committed)."""
    events: list[dict] = []
    with mock.patch("metrics.grants.send_to_group", lambda _, e: events.append(e)):
        yield events


class TestGrants:
    def test_grant_and_revoke_a_user(self, viewers, announced):
        web1, bob, _ = viewers
        _, err = run("grant", "web1", "--user", "bob")
        assert "Host web1 granted to user bob." in err
        assert list(web1.viewers.all()) == [bob]
        _, err = run("revoke", "web1", "--user", "bob")
        assert "Host web1 no longer granted to user bob." in err
        assert not web1.viewers.exists()
        names = {"user_ids": [str(bob.pk)], "hosts": ["web1"]}
        assert announced == [{"type": "access.changed", **names}] * 2

    def test_grant_and_revoke_a_group(self, viewers, announced):
        web1, _, ops = viewers
        carol = ops.user_set.get()
        run("grant", "web1", "--group", "ops")
        assert list(web1.viewer_groups.all()) == [ops]
        run("revoke", "web1", "--group", "ops")
        assert not web1.viewer_groups.exists()
        names = {"user_ids": [str(carol.pk)], "hosts": ["web1"]}
        assert announced == [{"type": "access.changed", **names}] * 2

    @pytest.mark.parametrize("viewer", [["--user", "bob"], ["--group", "ops"]])
    def test_a_grant_made_twice_or_revoked_twice_changes_nothing(
        self, viewers, announced, viewer
    ):
        run("grant", "web1", *viewer)
        _, err = run("grant", "web1", *viewer)
        assert "was granted to" in err
        assert "nothing changed" in err
        run("revoke", "web1", *viewer)
        _, err = run("revoke", "web1", *viewer)
        assert "was not granted to" in err
        assert "nothing changed" in err
        assert len(announced) == 2

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["ghost", "--user", "bob"], "No host named 'ghost'"),
            (["web1", "--user", "nobody"], "No user named 'nobody'."),
            (["web1", "--group", "nobody"], "No group named 'nobody'."),
        ],
    )
    @pytest.mark.parametrize("subcommand", ["grant", "revoke"])
    def test_an_unknown_host_user_or_group_is_a_command_error(
        self, viewers, subcommand, args, message
    ):
        with pytest.raises(CommandError, match=message):
            run(subcommand, *args)

    @pytest.mark.parametrize(
        "viewer", [[], ["--user", "bob", "--group", "ops"]], ids=["none", "both"]
    )
    def test_exactly_one_of_user_and_group_is_required(self, viewers, viewer):
        with pytest.raises(CommandError, match="--user"):
            run("grant", "web1", *viewer)


@pytest.fixture
def env(transactional_db):
    """A manage.py process's environment, on this test's database."""
    return service_env()


def test_add_as_a_process_prints_the_token_on_the_last_line_of_stdout(env):
    result = run_to_end([*MANAGE, "add", "db-1"], env)
    assert result.returncode == 0, result.stderr
    token = last_line(result.stdout)
    assert token == result.stdout.strip()
    assert hosts.authenticate_agent(token).name == "db-1"


def test_a_bad_or_duplicate_name_exits_1_with_one_line(env):
    assert run_to_end([*MANAGE, "add", "db-1"], env).returncode == 0
    for name in ("db-1", "DB_1"):
        result = run_to_end([*MANAGE, "add", name], env)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.startswith("CommandError: ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert Host.objects.count() == 1


def test_rotate_as_a_process_ends_the_old_token(env):
    old = last_line(run_to_end([*MANAGE, "add", "db-1"], env).stdout)
    result = run_to_end([*MANAGE, "rotate", "db-1"], env)
    assert result.returncode == 0, result.stderr
    assert hosts.authenticate_agent(old) is None
    assert hosts.authenticate_agent(last_line(result.stdout)).name == "db-1"


def test_grant_and_revoke_as_a_process_and_an_unknown_user_in_one_line(env):
    hosts.create_host("db-1")
    bob = get_user_model().objects.create_user("bob")
    granted = run_to_end([*MANAGE, "grant", "db-1", "--user", "bob"], env)
    assert granted.returncode == 0, granted.stderr
    assert list(bob.visible_hosts.values_list("name", flat=True)) == ["db-1"]
    revoked = run_to_end([*MANAGE, "revoke", "db-1", "--user", "bob"], env)
    assert revoked.returncode == 0, revoked.stderr
    assert not bob.visible_hosts.exists()
    unknown = run_to_end([*MANAGE, "grant", "db-1", "--group", "ghosts"], env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "CommandError: No group named 'ghosts'."


def test_an_unknown_host_exits_1_with_one_line(env):
    result = run_to_end([*MANAGE, "disable", "ghost"], env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: No host named 'ghost' (see: manage.py hosts list)."
    )


@pytest.mark.parametrize("args", [[], ["bogus"], ["add"], ["add", "a", "b"]], ids=repr)
def test_bad_usage_is_a_usage_error_not_a_traceback(env, args):
    result = run_to_end([*MANAGE, *args], env)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_redis_down_add_still_works_and_list_says_last_seen_is_unknown(env):
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    added = run_to_end([*MANAGE, "add", "db-1"], env)
    assert added.returncode == 0, added.stderr
    assert hosts.authenticate_agent(last_line(added.stdout)).name == "db-1"
    listed = run_to_end([*MANAGE, "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert "unknown (Redis unreachable)" in listed.stdout
    assert "Traceback" not in listed.stderr
