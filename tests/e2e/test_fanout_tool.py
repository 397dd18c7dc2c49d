"""tests/perf/fanout, the fan-out load tool, run end to end with a few clients."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from tests.support.processes import ROOT

TOOL = "tests.perf.fanout"
CLIENTS = 20
BROADCASTS = 2


def run_tool(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", TOOL, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
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


@pytest.mark.parametrize(
    "flags",
    [["--clients", "0"], ["--clients", "abc"], ["--interval", "0"], ["--only", "x"]],
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
