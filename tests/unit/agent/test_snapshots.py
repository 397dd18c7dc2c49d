from datetime import UTC, datetime, timedelta, timezone

from metrics.publisher import EVENT_TYPE, make_event, next_tick
from metrics.snapshots import build_snapshot, format_timestamp


def test_timestamp_is_iso_utc_to_the_millisecond_with_z():
    moment = datetime(2026, 1, 19, 14, 30, 5, 123956, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-01-19T14:30:05.123Z"


def test_timestamp_on_a_whole_second_keeps_its_milliseconds():
    moment = datetime(2026, 1, 19, 14, 30, 5, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-01-19T14:30:05.000Z"


def test_timestamp_of_other_zone_is_converted_to_utc():
    moment = datetime(2026, 1, 19, 16, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-01-19T14:30:05.000Z"


def test_snapshot_has_type_timestamp_and_data():
    data = {"cpu": {}, "memory": {}, "network": {}, "disk": {}}
    moment = datetime(2026, 1, 19, 14, 30, 5, 250000, tzinfo=UTC)
    assert build_snapshot(data, moment) == {
        "type": "metrics",
        "timestamp": "2026-01-19T14:30:05.250Z",
        "data": data,
    }


def test_event_carries_the_snapshot_serialised_once():
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    event = make_event(snapshot, 12.5)
    assert event["type"] == EVENT_TYPE
    assert event["ts"] == 12.5
    assert event["text"] == (
        '{"type":"metrics","timestamp":"2026-01-19T14:30:05Z","data":{}}'
    )


def test_next_tick_keeps_the_fixed_schedule():
    assert next_tick(start=100.0, interval=5.0, now=100.3) == 105.0
    assert next_tick(start=100.0, interval=5.0, now=104.9) == 105.0


def test_next_tick_skips_ticks_already_missed():
    assert next_tick(start=100.0, interval=5.0, now=111.0) == 115.0


def test_next_tick_on_a_tick_is_the_following_one():
    assert next_tick(start=100.0, interval=5.0, now=105.0) == 110.0
