"""The origin check answers as Channels' AllowedHostsOriginValidator does, once per
Origin."""

from urllib.parse import urlparse

import pytest
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator

from accounts.origins import AllowedHostsOriginCheck, RememberingOriginValidator

ORIGINS = [
    "http://localhost:8000",
    "http://127.0.0.1",
    "https://evil.example",
    "http://web:8000",
    "http://[::1]:8000",
    None,
]


def parsed(origin: str | None):
    return None if origin is None else urlparse(origin)


@pytest.mark.parametrize(
    ("debug", "allowed_hosts"),
    [(False, ["localhost", "127.0.0.1"]), (False, ["*"]), (True, []), (False, [])],
)
@pytest.mark.parametrize("origin", ORIGINS)
def test_answers_as_channels_does(settings, debug, allowed_hosts, origin):
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = allowed_hosts
    ours = AllowedHostsOriginCheck(None)
    theirs = AllowedHostsOriginValidator(None)
    assert isinstance(ours, OriginValidator)
    assert ours.valid_origin(parsed(origin)) == theirs.valid_origin(parsed(origin))


def test_each_origin_is_judged_once(monkeypatch):
    judged = []

    def validate(self, parsed_origin):
        judged.append(parsed_origin)
        return True

    monkeypatch.setattr(OriginValidator, "validate_origin", validate)
    validator = RememberingOriginValidator(None, ["localhost"])
    for _ in range(3):
        assert validator.valid_origin(parsed("http://localhost"))
    assert judged == [parsed("http://localhost")]
