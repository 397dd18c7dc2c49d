from datetime import UTC, datetime, timedelta, timezone

from agent.snapshots import build_snapshot, format_timestamp


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
