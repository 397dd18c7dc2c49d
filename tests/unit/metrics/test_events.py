import json

from metrics.events import EVENT_TYPE, host_frame, host_group, make_event


def test_event_carries_the_snapshot_serialised_once_with_its_host():
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    event = make_event(snapshot, 12.5, "db-1", 2.0)
    assert event["type"] == EVENT_TYPE
    assert event["ts"] == 12.5
    assert event["host"] == "db-1"
    assert event["interval"] == 2.0
    assert event["text"] == (
        '{"type":"metrics","timestamp":"2026-01-19T14:30:05Z","data":{},"host":"db-1"}'
    )


def test_each_host_has_a_group_of_its_own():
    assert host_group("db-1") == "metrics.db-1"
    assert host_group("db-1") != host_group("db-2")


def test_host_frame_names_the_host_and_its_state():
    assert json.loads(host_frame("db-1", False)) == {
        "type": "host",
        "host": "db-1",
        "online": False,
    }
