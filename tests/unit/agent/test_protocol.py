import json

import pytest

from agent.protocol import (
    INTERVAL_MAX,
    INTERVAL_MIN,
    Cadence,
    metrics_frame,
    read_server_frame,
)
from core.bounds import INTERVAL_SECONDS
from tests.support.hosts import host_event

CURRENT = Cadence(interval=5.0, live=False, idle_interval=60.0)
SNAPSHOT = {"type": "metrics", "timestamp": "2026-01-19T14:30:05.123Z", "data": {}}


def test_live_frame_is_the_text_the_local_publisher_stores_but_its_host():
    stored = json.loads(host_event(SNAPSHOT, 0.0)["text"])
    assert json.loads(metrics_frame(SNAPSHOT)) == {
        k: v for k, v in stored.items() if k != "host"
    }


def test_backfill_frame_is_the_snapshot_flagged():
    assert json.loads(metrics_frame(SNAPSHOT, backfill=True)) == {
        **SNAPSHOT,
        "backfill": True,
    }


def test_interval_bounds_are_the_services():
    assert tuple(INTERVAL_SECONDS) == (INTERVAL_MIN, INTERVAL_MAX)


def test_hello_gives_host_and_cadence():
    frame = read_server_frame(
        '{"type": "hello", "host": "edge-1", "interval": 1, "live": true,'
        ' "idle_interval": 0}',
        CURRENT,
    )
    assert frame.type == "hello"
    assert frame.host == "edge-1"
    assert frame.cadence == Cadence(interval=1.0, live=True, idle_interval=0.0)
    assert frame.problems == ()


def test_config_without_a_field_keeps_its_value():
    frame = read_server_frame('{"type": "config", "live": true}', CURRENT)
    assert frame.cadence == Cadence(interval=5.0, live=True, idle_interval=60.0)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ('"interval": 0.1', "interval 0.1"),
        ('"interval": "5"', "interval '5'"),
        ('"interval": true', "interval True"),
        ('"interval": 1e400', "interval inf"),
        ('"live": "yes"', "live 'yes'"),
        ('"idle_interval": 0.2', "idle_interval 0.2"),
        ('"idle_interval": -1', "idle_interval -1"),
    ],
)
def test_a_bad_field_is_named_and_keeps_its_value(fields, problem):
    frame = read_server_frame(f'{{"type": "config", {fields}}}', CURRENT)
    assert frame.cadence == CURRENT
    assert len(frame.problems) == 1
    assert frame.problems[0].startswith(problem)


def test_cadence_period_is_the_interval_live_the_idle_one_idle_none_for_zero():
    assert Cadence(2.0, True, 60.0).period == 2.0
    assert Cadence(2.0, False, 60.0).period == 60.0
    assert Cadence(2.0, False, 0.0).period is None


def test_error_frame_carries_its_message():
    frame = read_server_frame('{"type": "error", "message": "invalid JSON"}', CURRENT)
    assert (frame.type, frame.message) == ("error", "invalid JSON")


def test_unknown_frame_type_is_read_and_left_alone():
    frame = read_server_frame('{"type": "news", "interval": 0.1}', CURRENT)
    assert (frame.type, frame.cadence, frame.problems) == ("news", None, ())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": 5}', "not a JSON object"),
        (b"\x00\x01", "binary"),
    ],
)
def test_a_frame_that_is_not_a_typed_object_is_refused(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        read_server_frame(text, CURRENT)
