import pytest

from agent.addresses import agent_url, format_seconds


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("http://monitor.example.com", "ws://monitor.example.com/api/ws/agent"),
        ("https://monitor.example.com/", "wss://monitor.example.com/api/ws/agent"),
        ("HTTPS://monitor.example.com", "wss://monitor.example.com/api/ws/agent"),
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/ws/agent"),
        ("http://[::1]:8000", "ws://[::1]:8000/api/ws/agent"),
        ("ws://example.com/api/ws/agent", "ws://example.com/api/ws/agent"),
        ("wss://example.com/api/ws/agent/", "wss://example.com/api/ws/agent"),
        ("https://example.com/monitor", "wss://example.com/monitor/api/ws/agent"),
        ("  https://example.com  ", "wss://example.com/api/ws/agent"),
    ],
)
def test_server_address_becomes_the_agent_socket_url(server, url):
    assert agent_url(server) == url


def test_interval_goes_in_the_query_as_written_briefly():
    assert agent_url("http://h", 5.0) == "ws://h/api/ws/agent?interval=5"
    assert agent_url("http://h", 0.5) == "ws://h/api/ws/agent?interval=0.5"
    assert format_seconds(2.25) == "2.25"


@pytest.mark.parametrize(
    ("server", "complaint"),
    [
        ("monitor.example.com", "must start with http://"),
        ("monitor.example.com:8000", "must start with http://"),
        ("ftp://monitor.example.com", "must start with http://"),
        ("http:monitor.example.com", "must start with http://"),
        ("http://", "names no host"),
        ("http://:8000", "names no host"),
        ("http://host:0", "port 0"),
        ("http://host:http", "is not a URL"),
        ("http://host:99999", "is not a URL"),
        ("http://user:secret@host", "user name or password"),
        ("http://host/?token=abc", "must not have a query"),
        ("http://host/#top", "must not have a query"),
        ("", "must start with http://"),
    ],
)
def test_bad_server_address_says_what_is_wrong(server, complaint):
    with pytest.raises(ValueError, match=complaint) as raised:
        agent_url(server)
    assert "secret" not in str(raised.value)
