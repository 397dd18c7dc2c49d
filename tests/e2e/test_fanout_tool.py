"""tests/perf/fanout, the fan-out load tool, run end to end with a few clients."""

import importlib.util
import json
import subprocess
import sys

import pytest
from django.conf import settings

from tests.support.processes import ROOT

TOOL = "tests.perf.fanout"
CLIENTS = 20
BROADCASTS = 2
HOSTS = 2
HOST_CLIENTS = 10
FLEET_HOSTS = 3
GRANT_SETS = 3
FLEET_CLIENTS = 12


def run_tool(*flags: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", TOOL, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_two_workers(*flags: str) -> subprocess.CompletedProcess:
    """A run on 2 workers at 1 s, BROADCASTS measured, on the tests' Redis."""
    return run_tool(
        *flags,
        *("--workers", "2", "--interval", "1", "--broadcasts", str(BROADCASTS)),
        *("--redis-url", settings.REDIS_URL),
        timeout=240,
    )


def test_tool_measures_both_targets_without_loss(redis_sync):
    result = run_tool(
        "--clients",
        str(CLIENTS),
        "--workers",
        "1",
        "--interval",
        "1",
        "--broadcasts",
        str(BROADCASTS),
        "--redis-url",
        settings.REDIS_URL,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    report = json.loads(lines[0])
    for name in ("bare", "service"):
        target = report[name]
        assert target["connect"]["connected"] == CLIENTS, name
        assert target["connect"]["failures"] == {}, name
        assert target["lost"] == {"total": 0, "clients": 0}, name
        assert target["duplicated"] == {"total": 0, "clients": 0}, name
        assert target["disconnected"]["total"] == 0, name
        assert target["deliveries"] == CLIENTS * BROADCASTS, name
        latency = target["latency_ms"]
        for figure in (
            latency["first"]["p50"],
            latency["first"]["p95"],
            latency["first"]["max"],
            latency["last"]["p50"],
            latency["last"]["p95"],
            latency["last"]["max"],
            latency["all"]["p50"],
            latency["all"]["p95"],
        ):
            assert figure > 0, (name, latency)
    assert set(report["ratios"]) == {
        "last_p95",
        "last_p50",
        "first_p95",
        "connect_rate",
        "cpu_per_delivery",
        "rss_per_connection",
    }
    assert report["ratios"]["last_p95"] > 0
    assert report["ratios"]["connect_rate"] > 0
    prefix = report["config"]["key_prefix"]
    assert list(redis_sync.scan_iter(match=f"{prefix}:*")) == []


def test_tool_measures_compressing_clients_beside_plain_ones(redis_sync):
    result = run_tool(
        "--compress",
        "--clients",
        str(CLIENTS),
        "--broadcasts",
        str(BROADCASTS),
        "--redis-url",
        settings.REDIS_URL,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["targets"] == ["service", "deflate"]
    assert report["bare"] is None
    for name in ("service", "deflate"):
        target = report[name]
        assert target["connect"]["connected"] == CLIENTS, name
        assert target["lost"] == {"total": 0, "clients": 0}, name
        assert target["duplicated"] == {"total": 0, "clients": 0}, name
        assert target["deliveries"] == CLIENTS * BROADCASTS, name
        # Each delivery is at least a frame's header on the wire.
        assert target["wire"]["bytes_per_delivery"] > 2, name
        # The workers' own figure, from /metrics, of each broadcast of the window.
        assert target["server_delivery"]["snapshots"] >= BROADCASTS, name
        assert target["server_delivery"]["mean_ms"] > 0, name
    assert report["deflate"]["client_compression"] == "permessage-deflate"
    weighed = report["deflate_vs_plain"]
    # A snapshot is JSON: compressed, it is well under its plain size.
    assert 0 < weighed["wire_bytes_per_delivery"] < 0.8
    assert weighed["limit"] == 1.25
    assert set(weighed["met"]) == {"last_p95", "cpu_per_delivery"}
    prefix = report["config"]["key_prefix"]
    assert list(redis_sync.scan_iter(match=f"{prefix}:*")) == []


@pytest.mark.skipif(
    importlib.util.find_spec("metrics.hosts") is None,
    reason="needs the server side of issue 13 (hosts and the agent socket)",
)
@pytest.mark.timeout(300)  # two targets in turn, and two more phases
def test_tool_measures_hosts_against_one_host(redis_sync):
    result = run_two_workers(
        "--hosts",
        str(HOSTS),
        "--clients",
        str(HOST_CLIENTS),
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["targets"] == ["service", "hosts"]
    assert report["bare"] is None
    single, hosts = report["service"], report["hosts"]
    assert single["lost"] == {"total": 0, "clients": 0}
    assert hosts["connect"]["connected"] == HOST_CLIENTS
    assert hosts["agents"]["connected"] == HOSTS
    assert hosts["agents_closed_by_server"] == {}
    for figure in ("lost", "duplicated", "foreign", "out_of_order"):
        assert hosts[figure] == {"total": 0, "clients": 0}, figure
    assert hosts["disconnected"]["total"] == 0
    assert hosts["deliveries"] == HOST_CLIENTS * BROADCASTS
    assert set(hosts["per_host"]) == {"fanout-000", "fanout-001"}
    for name, figures in hosts["per_host"].items():
        assert figures["viewers"] == HOST_CLIENTS // HOSTS, name
        assert figures["deliveries"] == figures["viewers"] * BROADCASTS, name
        assert figures["latency_ms"]["last"]["p95"] > 0, name
    assert hosts["cpu"]["snapshots_ingested"] > 0
    assert hosts["cpu"]["server_ms_per_snapshot"] > 0
    assert hosts["cpu"]["redis_commands_per_snapshot"] > 0
    fewer = hosts["fewer_viewers"]
    # Half of each host's 5, rounded up.
    assert fewer["half"]["viewers"] == HOSTS * 3
    assert fewer["one_per_host"]["viewers"] == HOSTS
    for phase in fewer.values():
        assert phase["snapshots_ingested"] > 0
        assert phase["redis_commands_per_snapshot"] > 0
    verdict = report["hosts_vs_single"]
    assert verdict["lost"] == verdict["duplicated"] == 0
    assert verdict["last_p95_ratio"] > 0
    assert verdict["ingest_ms_per_snapshot"] > 0
    prefix = report["config"]["key_prefix"]
    assert list(redis_sync.scan_iter(match=f"{prefix}:*")) == []


@pytest.mark.skipif(
    importlib.util.find_spec("metrics.fleet") is None,
    reason="needs the server side of issue 14 (the fleet stream)",
)
@pytest.mark.timeout(300)  # two targets in turn, and a phase without viewers
def test_tool_measures_fleet_viewers_against_one_host(redis_sync):
    result = run_two_workers(
        "--fleet",
        "--hosts",
        str(FLEET_HOSTS),
        "--grant-sets",
        str(GRANT_SETS),
        "--clients",
        str(FLEET_CLIENTS),
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["targets"] == ["service", "fleet"]
    assert report["config"]["grant_sets"] == GRANT_SETS
    single, fleet = report["service"], report["fleet"]
    assert single["lost"] == {"total": 0, "clients": 0}
    assert fleet["connect"]["connected"] == FLEET_CLIENTS
    assert fleet["agents"]["connected"] == FLEET_HOSTS
    assert fleet["agents_closed_by_server"] == {}
    # Set k sees the hosts whose index mod 3 is at most k.
    assert fleet["grant_sets"] == {"set-00": 1, "set-01": 2, "set-02": 3}
    for figure in ("lost", "duplicated", "wrong_hosts", "out_of_order"):
        assert fleet[figure] == {"total": 0, "clients": 0}, figure
    assert fleet["disconnected"]["total"] == 0
    assert fleet["frames"] == BROADCASTS
    assert fleet["frame_gaps"]["intervals_without_frame"] == 0
    assert fleet["deliveries"] == FLEET_CLIENTS * BROADCASTS
    for label, figures in fleet["per_set"].items():
        assert figures["viewers"] == FLEET_CLIENTS // GRANT_SETS, label
        assert figures["deliveries"] == figures["viewers"] * BROADCASTS, label
        assert figures["frame_bytes"] > 0, label
        assert figures["latency_ms"]["last"]["p95"] > 0, label
    # Every agent sends once per interval, watched or not.
    assert fleet["cpu"]["snapshots_ingested"] >= FLEET_HOSTS
    assert fleet["cpu"]["server_ms_per_delivery"] > 0
    # One viewer per grant set is left (one client process).
    assert fleet["few_viewers"]["viewers"] == GRANT_SETS
    assert fleet["few_viewers"]["snapshots_ingested"] >= FLEET_HOSTS
    assert fleet["few_viewers"]["deliveries"] > 0
    verdict = report["fleet_vs_single"]
    assert verdict["lost"] == verdict["wrong_hosts"] == 0
    assert verdict["met"]["no_loss"]
    assert verdict["met"]["exact_hosts_in_order"]
    assert verdict["last_p95_ratio"] > 0
    # A run this small may see no CPU tick of the single host's worker: no ratio.
    single_cpu = single["cpu"]["server_ms_per_delivery"]
    fleet_cpu = fleet["cpu"]["server_ms_per_delivery"]
    expected = round(fleet_cpu / single_cpu, 2) if single_cpu else None
    assert verdict["cpu_ratio_all_in"] == expected
    prefix = report["config"]["key_prefix"]
    assert list(redis_sync.scan_iter(match=f"{prefix}:*")) == []


@pytest.mark.parametrize(
    "flags",
    [
        ["--clients", "0"],
        ["--clients", "abc"],
        ["--interval", "0"],
        ["--only", "x"],
        ["--hosts", "0"],
        ["--hosts", "abc"],
        ["--hosts", "1001"],
        ["--hosts", "5", "--clients", "3"],
        ["--only", "hosts"],
        ["--only", "bare", "--hosts", "2"],
        ["--fleet"],
        ["--fleet", "--hosts", "2", "--grant-sets", "3"],
        ["--grant-sets", "0"],
        ["--only", "fleet", "--hosts", "2"],
        ["--only", "hosts", "--hosts", "2", "--fleet"],
        ["--only", "deflate", "--hosts", "2"],
        ["--compress", "--only", "service"],
        ["--compress", "--hosts", "2"],
    ],
)
def test_tool_refuses_bad_flags(flags):
    result = run_tool(*flags)

    assert result.returncode == 2
    assert flags[0] in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_tool_loads_without_django():
    # The tool and the tests/support helpers it uses run without Django settings;
    # only issuing the service's tokens sets Django up, in the run itself.
    code = (
        "import sys, tests.perf.fanout.__main__\n"
        "print(sorted(name for name in sys.modules if name.startswith('django')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
