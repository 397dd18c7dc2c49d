"""Configuration from the environment: bad values stop start-up with a clear message."""

import sys

import pytest

from tests.support.processes import run_to_end, service_env

BAD_ENVIRONMENTS = [
    ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
    ({"DJANGO_ALLOWED_HOSTS": " , "}, "DJANGO_ALLOWED_HOSTS"),
    ({"DATABASE_URL": "mysql://db/monitor"}, "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://"}, "REDIS_URL"),
    ({"METRICS_INTERVAL": "abc"}, "METRICS_INTERVAL"),
    ({"METRICS_INTERVAL": "0"}, "METRICS_INTERVAL"),
    ({"METRICS_INTERVAL": "nan"}, "METRICS_INTERVAL"),
    ({"JWT_ACCESS_TOKEN_LIFETIME": "-5"}, "JWT_ACCESS_TOKEN_LIFETIME"),
    ({"METRICS_LOG_LEVEL": "LOUD"}, "METRICS_LOG_LEVEL"),
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
