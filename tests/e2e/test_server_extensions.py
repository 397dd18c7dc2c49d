"""A web worker says which of its extensions are on: all that fit, or none if
METRICS_SERVER_EXTENSIONS=0. (What holds without them: the security, fan-out and
fault tests run with them on and off.)"""

import pytest

from tests.support import processes

pytestmark = pytest.mark.django_db(transaction=True)


def worker_log(tmp_path, **env: str) -> str:
    """What a daphne worker logged up to listening on its port."""
    with processes.daphne(tmp_path, **env) as (_, port):
        return (tmp_path / f"daphne-{port}.log").read_text()


def test_a_worker_turns_on_every_extension_that_fits(tmp_path):
    log = worker_log(tmp_path)
    assert (
        "Server extensions on: send-buffer, direct-write, ready-frames, lazy-pformat"
        in log
    )
    assert "Server extension " not in log


def test_the_extensions_can_be_turned_off(tmp_path):
    log = worker_log(tmp_path, METRICS_SERVER_EXTENSIONS="0")
    assert "Server extensions off (METRICS_SERVER_EXTENSIONS=0)" in log
    assert "Server extensions on" not in log
