"""REDIS_URL's Sentinel form read into Sentinels, master, database and credentials,
and every way to get it wrong refused with the reason."""

import re

import pytest

from core.redis_urls import (
    DEFAULT_SENTINEL_PORT,
    SENTINEL_TIMEOUT,
    SentinelURL,
    is_sentinel_url,
    parse_sentinel_url,
)


def test_the_issues_example_names_two_sentinels_the_master_and_db_0():
    target = parse_sentinel_url("redis+sentinel://h1:26379,h2:26379/mymaster/0")
    assert target == SentinelURL(
        sentinels=(("h1", 26379), ("h2", 26379)), master="mymaster", db=0
    )
    assert target.server_options() == {"db": 0}


def test_ports_default_to_26379_and_the_db_to_0_and_ipv6_goes_in_brackets():
    target = parse_sentinel_url("redis+sentinel://h1,[::1]:26380,[fe80::1]/cache/")
    assert target.sentinels == (
        ("h1", DEFAULT_SENTINEL_PORT),
        ("::1", 26380),
        ("fe80::1", DEFAULT_SENTINEL_PORT),
    )
    assert (target.master, target.db) == ("cache", 0)


def test_credentials_are_the_servers_and_parameters_the_sentinels():
    url = (
        "redis+sentinel://app:p%40ss@h1:26379/mymaster/3"
        "?sentinel_username=watch&sentinel_password=s%26w"
    )
    target = parse_sentinel_url(url)
    assert target.server_options() == {"db": 3, "username": "app", "password": "p@ss"}
    sentinel = target.sentinel_options({"socket_keepalive": True})
    assert sentinel == {
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_keepalive": True,
        "username": "watch",
        "password": "s&w",
    }
    assert "p@ss" not in repr(target)
    assert "s&w" not in repr(target)


def test_a_password_without_a_user_logs_in_as_the_default_user():
    target = parse_sentinel_url("redis+sentinel://:hunter2@h1/mymaster")
    assert target.server_options() == {"db": 0, "password": "hunter2"}


def test_rediss_sentinel_means_tls_to_the_sentinels_and_the_servers():
    url = (
        "rediss+sentinel://h1/mymaster/1?ssl_ca_certs=/etc/ca.pem"
        "&ssl_cert_reqs=REQUIRED&ssl_check_hostname=false"
    )
    target = parse_sentinel_url(url)
    tls = {
        "ssl": True,
        "ssl_ca_certs": "/etc/ca.pem",
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": False,
    }
    assert target.server_options() == {"db": 1, **tls}
    assert target.sentinel_options({}).items() >= tls.items()


@pytest.mark.parametrize(
    ("url", "sentinel"),
    [
        ("redis+sentinel://h/m", True),
        ("REDISS+SENTINEL://h/m", True),
        ("redis://127.0.0.1:6379/0", False),
        ("rediss://h:6380/0", False),
        ("unix:///run/redis.sock", False),
        ("sentinel://h/m", False),
    ],
)
def test_only_the_two_sentinel_schemes_are_sentinel_urls(url, sentinel):
    assert is_sentinel_url(url) is sentinel


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://h1:26379,h2:26379", "must name the master"),
        ("redis+sentinel://h1:26379/", "must name the master"),
        ("redis+sentinel:///mymaster", "at least one Sentinel"),
        ("redis+sentinel://h1,,h2/mymaster", "at least one Sentinel"),
        ("redis+sentinel://h1:/mymaster", "without its port"),
        ("redis+sentinel://:26379/mymaster", "without a host"),
        ("redis+sentinel://h1:sixty/mymaster", "not 1 to 65535"),
        ("redis+sentinel://h1:70000/mymaster", "not 1 to 65535"),
        ("redis+sentinel://[::1/mymaster", "not a valid URL"),
        ("redis+sentinel://h1/mymaster/zero", "not a whole number"),
        ("redis+sentinel://h1/mymaster/0/extra", "must end with /MASTER or /MASTER/DB"),
        ("redis+sentinel://h1/mymaster?db=2", "unknown parameter 'db'"),
        ("redis+sentinel://h1/mymaster?ssl_ca_certs=/ca.pem", "only with rediss+"),
        ("rediss+sentinel://h1/mymaster?ssl_cert_reqs=maybe", "one of required"),
        ("redis+sentinel://h1/mymaster#top", "fragment"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_saying_why(url, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_sentinel_url(url)
