"""What ./run tells a new user: the names that reach it."""

from runner.addresses import ANY_ADDRESS, reach

DEFAULT_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
MACHINE = ["127.0.0.1", "192.0.2.7", "10.1.2.3"]


def test_a_loopback_address_is_reached_by_itself_only():
    found = reach("127.0.0.1", DEFAULT_HOSTS, False, MACHINE, "box")
    assert found.names == ["127.0.0.1"]
    assert found.allowed_hosts == DEFAULT_HOSTS
    assert not found.admitted_for_children
    assert found.refused == []


def test_every_address_with_hosts_unset_admits_the_machines_names():
    found = reach(ANY_ADDRESS, DEFAULT_HOSTS, False, MACHINE, "box")
    assert found.names == [*MACHINE, "box"]
    assert found.admitted_for_children
    assert found.allowed_hosts == [*DEFAULT_HOSTS, "192.0.2.7", "10.1.2.3", "box"]


def test_one_outside_address_with_hosts_unset_admits_it_and_the_host_name():
    found = reach("192.0.2.7", DEFAULT_HOSTS, False, MACHINE, "box")
    assert found.names == ["192.0.2.7", "box"]
    assert found.allowed_hosts == [*DEFAULT_HOSTS, "192.0.2.7", "box"]


def test_set_hosts_are_kept_and_the_refused_names_given_with_the_value_to_set():
    found = reach(
        ANY_ADDRESS, ["127.0.0.1", ".example.org", "box"], True, MACHINE, "box"
    )
    assert not found.admitted_for_children
    assert found.allowed_hosts == ["127.0.0.1", ".example.org", "box"]
    assert found.refused == ["192.0.2.7", "10.1.2.3"]
    assert (
        found.allowed_hosts_value() == "127.0.0.1,.example.org,box,192.0.2.7,10.1.2.3"
    )


def test_a_wildcard_in_set_hosts_refuses_nothing():
    assert reach(ANY_ADDRESS, ["*"], True, MACHINE, "box").refused == []
