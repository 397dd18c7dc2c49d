"""The fleet frame's entries and frames, built from snapshots and host states."""

import json

import pytest

from metrics.fleet import (
    FIGURES,
    build_entry,
    figures_of,
    fleet_frame,
    is_fleet_event,
    make_fleet_event,
    parse_snapshot,
    serialise_entries,
)
from metrics.fleetbuilder import next_tick
from metrics.hoststate import HostState
from metrics.store import Latest

ONLINE = HostState(
    online=True, last_seen=1768833005.25, interval=5.0, clock_skew=False, known=True
)
NEVER_SEEN = HostState(online=False, last_seen=None, interval=None, clock_skew=False)
DATA = {
    "cpu": {"usage_percent": 12.5, "load_avg": [0.52, 0.4, 0.3]},
    "memory": {"usage_percent": 41.2},
    "network": {"bytes_sent_per_sec": 10240.0, "bytes_recv_per_sec": 20480.0},
    "disk": {
        "partitions": {"/": {"usage_percent": 30.0}, "/data": {"usage_percent": 70.5}}
    },
}
SNAPSHOT = {"type": "metrics", "timestamp": "2026-01-19T14:30:05.000Z", "data": DATA}


def latest(snapshot: dict | None, state: HostState = ONLINE) -> Latest:
    event = None if snapshot is None else {"ts": 1.0, "text": json.dumps(snapshot)}
    return Latest(event, state)


def test_an_entry_has_the_state_and_the_figures_of_the_latest_snapshot():
    assert build_entry("db-1", SNAPSHOT, ONLINE) == {
        "host": "db-1",
        "online": True,
        "last_seen": "2026-01-19T14:30:05.250Z",
        "cpu_percent": 12.5,
        "memory_percent": 41.2,
        "load_1": 0.52,
        "net_sent_per_sec": 10240.0,
        "net_recv_per_sec": 20480.0,
        "disk_max_percent": 70.5,
    }


def test_a_host_without_a_snapshot_has_null_figures():
    entry = build_entry("new", None, NEVER_SEEN)
    assert entry == {"host": "new", "online": False, "last_seen": None} | dict.fromkeys(
        FIGURES
    )


@pytest.mark.parametrize(
    ("data", "figure"),
    [
        ({**DATA, "cpu": {"usage_percent": 1.0, "load_avg": None}}, "load_1"),
        ({**DATA, "cpu": {"usage_percent": 1.0, "load_avg": []}}, "load_1"),
        ({**DATA, "disk": {"partitions": {}}}, "disk_max_percent"),
        (
            {**DATA, "disk": {"partitions": [{"usage_percent": 5.0}]}},
            "disk_max_percent",
        ),
        ({**DATA, "disk": {"partitions": "x"}}, "disk_max_percent"),
        ({**DATA, "cpu": {"usage_percent": None}}, "cpu_percent"),
        ({**DATA, "cpu": {"usage_percent": True}}, "cpu_percent"),
        ({**DATA, "memory": "full"}, "memory_percent"),
        ({**DATA, "network": {}}, "net_recv_per_sec"),
    ],
)
def test_a_figure_missing_or_not_a_number_is_null(data, figure):
    assert figures_of({"data": data})[figure] is None


def test_partitions_without_a_number_are_passed_over_for_the_fullest():
    partitions = {
        "/": {"usage_percent": None},
        "/a": {},
        "/b": 5,
        "/c": {"usage_percent": 9},
    }
    assert (
        figures_of({"data": {"disk": {"partitions": partitions}}})["disk_max_percent"]
        == 9
    )


def test_a_garbled_snapshot_counts_as_none():
    garbled = Latest({"ts": 1.0, "text": "{not json"}, ONLINE)
    assert parse_snapshot(garbled) is None
    assert parse_snapshot(latest(None)) is None
    assert parse_snapshot(Latest({"ts": 1.0, "text": "[1]"}, ONLINE)) is None


def test_entries_are_serialised_once_each_in_name_order():
    entries = serialise_entries({"web-1": latest(None), "db-1": latest(SNAPSHOT)})
    assert list(entries) == ["db-1", "web-1"]
    assert json.loads(entries["db-1"]) == build_entry("db-1", SNAPSHOT, ONLINE)


def test_a_frame_holds_only_the_visible_hosts_in_name_order():
    entries = serialise_entries({name: latest(SNAPSHOT) for name in ("c", "a", "b")})
    event = make_fleet_event(entries, 1768833005.0, 5)
    frame = json.loads(fleet_frame(event, frozenset({"c", "a", "x"})))
    assert frame["type"] == "fleet"
    assert frame["timestamp"] == "2026-01-19T14:30:05.000Z"
    assert frame["interval"] == 5
    assert [entry["host"] for entry in frame["hosts"]] == ["a", "c"]
    assert frame["hosts"][0] == build_entry("a", SNAPSHOT, ONLINE)


def test_a_frame_of_nothing_visible_has_no_hosts():
    event = make_fleet_event({"a": "{}"}, 1768833005.0, 5)
    assert json.loads(fleet_frame(event, frozenset()))["hosts"] == []


@pytest.mark.parametrize(
    "event",
    [
        {"ts": "now", "interval": 5, "entries": {}},
        {"ts": True, "interval": 5, "entries": {}},
        {"ts": 1.0, "interval": None, "entries": {}},
        {"ts": 1.0, "interval": 5, "entries": []},
        {"ts": 1.0, "interval": 5, "entries": {"a": {"host": "a"}}},
        {"ts": 1.0, "interval": 5},
    ],
)
def test_a_malformed_fleet_event_is_recognised(event):
    assert not is_fleet_event(event)


def test_a_fleet_event_made_here_is_recognised():
    assert is_fleet_event(make_fleet_event({"a": "{}"}, 1.0, 5))


@pytest.mark.parametrize(
    ("now", "interval", "tick"),
    [(12.3, 5.0, 15.0), (15.0, 5.0, 20.0), (0.2, 0.5, 0.5), (7.0, 1.0, 8.0)],
)
def test_ticks_fall_on_multiples_of_the_interval(now, interval, tick):
    assert next_tick(now, interval) == pytest.approx(tick)
