from metrics.events import EVENT_TYPE, make_event


def test_event_carries_the_snapshot_serialised_once():
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    event = make_event(snapshot, 12.5)
    assert event["type"] == EVENT_TYPE
    assert event["ts"] == 12.5
    assert event["text"] == (
        '{"type":"metrics","timestamp":"2026-01-19T14:30:05Z","data":{}}'
    )
