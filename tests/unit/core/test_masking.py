"""URLs in messages: their passwords masked, whatever kind of URL."""

import pytest

from core.masking import masked, scrubbed


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@db.internal:6379/0", "redis://:***@db.internal:6379/0"),
        ("postgres://app:s3cret@db:5432/monitor", "postgres://app:***@db:5432/monitor"),
        ("rediss://user:s3cret@[::1]:6380/1", "rediss://user:***@[::1]:6380/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:////srv/db.sqlite3", "sqlite:////srv/db.sqlite3"),
        (
            "redis+sentinel://:s3cret@h1:26379,h2:26379/mymaster/0",
            "redis+sentinel://:***@h1:26379,h2:26379/mymaster/0",
        ),
        (
            "rediss+sentinel://h1,h2/mymaster?sentinel_password=s3cret&ssl_cert_reqs=none",
            "rediss+sentinel://h1,h2/mymaster?sentinel_password=***&ssl_cert_reqs=none",
        ),
    ],
)
def test_urls_are_shown_with_their_password_masked(url, shown):
    assert masked(url) == shown


def test_an_error_quoting_the_password_is_scrubbed():
    url = "postgres://app:s3cret@db:5432/monitor"
    assert scrubbed('password "s3cret" rejected', url) == 'password "***" rejected'


def test_an_error_quoting_a_sentinel_password_is_scrubbed_encoded_or_not():
    url = "redis+sentinel://:a%2Fb@h1/m?sentinel_password=p%40ss"
    text = "auth a/b failed; auth p@ss failed; a%2Fb"
    assert scrubbed(text, url) == "auth *** failed; auth *** failed; ***"
