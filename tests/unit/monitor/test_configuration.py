"""Configuration from the environment: bad values stop start-up with a clear message."""

import re
import sys

import pytest
import yaml

from agent.devices import DEFAULT_DISK_EXCLUDE, DEFAULT_NET_EXCLUDE
from monitor.settings import env_globs
from tests.support.processes import ROOT, run_to_end, service_env

BAD_ENVIRONMENTS = [
    ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
    ({"DJANGO_ALLOWED_HOSTS": " , "}, "DJANGO_ALLOWED_HOSTS"),
    ({"DATABASE_URL": "mysql://db/monitor"}, "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://"}, "REDIS_URL"),
    ({"REDIS_URL": "redis+sentinel://h1:26379,h2:26379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis+sentinel:///mymaster"}, "REDIS_URL"),
    ({"REDIS_URL": "redis+sentinel://h1:port/mymaster/0"}, "REDIS_URL"),
    ({"REDIS_URL": "redis+sentinel://h1/mymaster?timeout=1"}, "REDIS_URL"),
    ({"METRICS_INTERVAL": "abc"}, "METRICS_INTERVAL"),
    ({"METRICS_INTERVAL": "0"}, "METRICS_INTERVAL"),
    ({"METRICS_INTERVAL": "nan"}, "METRICS_INTERVAL"),
    ({"JWT_ACCESS_TOKEN_LIFETIME": "-5"}, "JWT_ACCESS_TOKEN_LIFETIME"),
    ({"METRICS_LOG_LEVEL": "LOUD"}, "METRICS_LOG_LEVEL"),
    ({"METRICS_NET_EXCLUDE": "lo,docker *"}, "METRICS_NET_EXCLUDE"),
    ({"METRICS_DISK_EXCLUDE": "loop*, ram disk"}, "METRICS_DISK_EXCLUDE"),
    ({"METRICS_HTTP_HEADER_TIMEOUT": "0"}, "METRICS_HTTP_HEADER_TIMEOUT"),
    ({"METRICS_MAX_PENDING_PER_IP": "1.5"}, "METRICS_MAX_PENDING_PER_IP"),
    ({"METRICS_MAX_PENDING_PER_IP": "-1"}, "METRICS_MAX_PENDING_PER_IP"),
    ({"METRICS_WS_MAX_SOCKETS_PER_USER": "many"}, "METRICS_WS_MAX_SOCKETS_PER_USER"),
    ({"METRICS_WS_MAX_SOCKETS_PER_USER": "2.5"}, "METRICS_WS_MAX_SOCKETS_PER_USER"),
]


@pytest.fixture
def base_env(db):
    return service_env()


@pytest.mark.parametrize(("overrides", "variable"), BAD_ENVIRONMENTS)
def test_bad_variable_stops_manage_py_naming_it(base_env, overrides, variable):
    result = run_to_end(
        [sys.executable, "manage.py", "check"], {**base_env, **overrides}
    )
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_sentinel_url_is_refused_with_its_passwords_masked(base_env):
    url = "redis+sentinel://:hunter2@h1:26379/mymaster/x?sentinel_password=s3cret"
    result = run_to_end(
        [sys.executable, "manage.py", "check"], {**base_env, "REDIS_URL": url}
    )
    assert result.returncode != 0
    assert "REDIS_URL has a database number that is not a whole number" in (
        result.stderr
    )
    assert "redis+sentinel://:***@h1:26379/mymaster/x?sentinel_password=***" in (
        result.stderr
    )
    assert "hunter2" not in result.stderr
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sentinel_url_passes_the_checks(base_env):
    env = {**base_env, "REDIS_URL": "redis+sentinel://h1:26379,h2:26379/mymaster/0"}
    result = run_to_end([sys.executable, "manage.py", "check", "--deploy"], env)
    assert result.returncode == 0, result.stderr


def test_bad_variable_stops_daphne_naming_it(base_env):
    env = {**base_env, "METRICS_INTERVAL": "soon"}
    args = [sys.executable, "-m", "daphne", "-p", "0", "monitor.asgi:application"]
    result = run_to_end(args, env)
    assert result.returncode != 0
    assert "METRICS_INTERVAL" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_mode_runs_without_a_secret_key(base_env):
    env = {**base_env, "DJANGO_SECRET_KEY": "", "DJANGO_DEBUG": "1"}
    result = run_to_end([sys.executable, "manage.py", "check"], env)
    assert result.returncode == 0, result.stderr


def test_valid_environment_passes_the_checks(base_env):
    result = run_to_end([sys.executable, "manage.py", "check", "--deploy"], base_env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_NET_EXCLUDE),
        ("", ()),
        ("lo, docker* ,,veth*", ("lo", "docker*", "veth*")),
    ],
    ids=["unset", "empty", "listed"],
)
def test_exclusion_globs_default_unless_set_and_empty_leaves_nothing_out(
    monkeypatch, raw, expected
):
    if raw is None:
        monkeypatch.delenv("METRICS_NET_EXCLUDE", raising=False)
    else:
        monkeypatch.setenv("METRICS_NET_EXCLUDE", raw)
    assert env_globs("METRICS_NET_EXCLUDE", DEFAULT_NET_EXCLUDE) == expected


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("METRICS_NET_EXCLUDE", DEFAULT_NET_EXCLUDE),
        ("METRICS_DISK_EXCLUDE", DEFAULT_DISK_EXCLUDE),
    ],
)
def test_exclusion_defaults_are_the_ones_documented_and_composed(variable, default):
    written = ",".join(default)
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    row = re.search(rf"^\| `{variable}` \| `([^`]*)` \|", configuration, re.MULTILINE)
    assert row
    assert row.group(1) == written
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-service-env"][variable] == written
