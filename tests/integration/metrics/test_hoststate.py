"""Each host's state read from Redis (metrics.hoststate.load_host_states)."""

import time

from core.keys import redis_key
from metrics.hoststate import HostState, load_host_states


def test_states_are_read_for_every_named_host(clean_redis):
    now = time.time()
    clean_redis.hset(
        redis_key("host", "web1", "state"),
        mapping={"last_seen": now - 1, "interval": 2, "clock_skew": 1, "agent": ""},
    )
    states = load_host_states(["web1", "web2"], now=now)
    assert states == {
        "web1": HostState(
            online=True, last_seen=now - 1, interval=2.0, clock_skew=True
        ),
        "web2": HostState(
            online=False, last_seen=None, interval=None, clock_skew=False
        ),
    }


def test_no_names_need_no_redis():
    assert load_host_states([]) == {}
