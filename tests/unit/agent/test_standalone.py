"""The agent, monitor-agent included, runs where Django cannot even be imported."""

import json
import os
import sys

from tests.support.processes import run_to_end

# Runs in a child whose `import django` fails, as on a host without the server.
PROBE = """
import json, sys
from datetime import UTC, datetime

sys.modules["django"] = None  # any import of Django now raises ImportError
try:
    import django
except ImportError:
    pass
else:
    raise SystemExit("Django could still be imported")

from agent.collectors import HostCollector
from agent.schedule import next_tick
from agent.snapshots import build_snapshot
import agent.cli  # the whole of monitor-agent: transport, reporter, buffer

collector = HostCollector()
collector.prime()
snapshot = build_snapshot(collector.collect(), datetime.now(UTC))
assert next_tick(0.0, 1.0, 0.5) == 1.0
ours = sorted(name for name in sys.modules if name.split(".")[0] in {
    "core", "accounts", "metrics", "runner", "monitor", "channels", "django",
} and sys.modules[name] is not None)
print(json.dumps({"snapshot": snapshot, "loaded": ours}))
"""


def test_agent_collects_a_snapshot_without_django():
    result = run_to_end([sys.executable, "-c", PROBE], dict(os.environ))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["loaded"] == []
    assert report["snapshot"]["type"] == "metrics"
    assert set(report["snapshot"]["data"]) == {"cpu", "memory", "network", "disk"}
