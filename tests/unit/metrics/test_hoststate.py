"""A host's state hash read into a HostState (metrics.hoststate)."""

from metrics.hoststate import HostState, read_host_state

NOW = 1_800_000_000.0


def test_a_host_with_nothing_in_redis_is_offline_and_never_seen():
    assert read_host_state({}, NOW) == HostState(
        online=False, last_seen=None, interval=None, clock_skew=False
    )


def test_a_host_seen_within_three_intervals_and_a_second_is_online():
    fields = {"last_seen": str(NOW - 7), "interval": "2"}
    state = read_host_state(fields, NOW)
    assert state.online
    assert state.last_seen == NOW - 7
    assert state.interval == 2.0


def test_a_host_silent_longer_than_three_intervals_and_a_second_is_offline():
    fields = {"last_seen": str(NOW - 7.1), "interval": "2"}
    assert not read_host_state(fields, NOW).online


def test_a_host_with_a_connected_agent_is_online_whenever_last_seen():
    fields = {"last_seen": str(NOW - 3600), "interval": "2", "agent": "specific.abc"}
    assert read_host_state(fields, NOW).online


def test_clock_skew_is_read_as_a_flag():
    assert read_host_state({"clock_skew": "1"}, NOW).clock_skew
    assert not read_host_state({"clock_skew": "0"}, NOW).clock_skew


def test_unreadable_numbers_are_unknown():
    fields = {"last_seen": "soon", "interval": "nan"}
    state = read_host_state(fields, NOW)
    assert state.last_seen is None
    assert state.interval is None
    assert not state.online
