"""./run's web workers share a Prometheus directory of the run's; a worker that
exits takes its live gauges (open sockets) with it."""

import socket
from pathlib import Path

from runner.management.commands.runservice import Command


def test_the_workers_share_the_runs_directory_and_the_publisher_does_not(tmp_path):
    with socket.socket() as sock:
        children = Command().service_children(
            sock, 2, {"interval": None}, {"PATH": "/bin"}, tmp_path
        )
    workers = [child for child in children if child.name.startswith("web-")]
    [publisher] = [child for child in children if child.name == "publisher"]
    assert len(workers) == 2
    assert all(w.env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path) for w in workers)
    assert "PROMETHEUS_MULTIPROC_DIR" not in publisher.env


def test_a_dead_workers_live_gauges_are_dropped_and_its_counters_kept(tmp_path):
    with socket.socket() as sock:
        [worker, *_] = Command().service_children(
            sock, 1, {"interval": None}, {}, tmp_path
        )
    for name in ("gauge_livesum_41.db", "counter_41.db", "gauge_livesum_42.db"):
        Path(tmp_path, name).touch()
    worker.on_exit(41)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_41.db",
        "gauge_livesum_42.db",
    ]
