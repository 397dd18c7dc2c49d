"""deploy/monitor-agent.service: the agent as a systemd service, checked against the
agent's real command line and, where systemd is installed, by systemd itself."""

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.cli import TOKEN_VARIABLE, parse_options
from agent.service import EXIT_REPLACED, EXIT_USAGE
from tests.support.children import ROOT

UNIT = ROOT / "deploy" / "monitor-agent.service"


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_agent_runs_as_its_own_unprivileged_user(unit):
    service = unit["Service"]
    assert service["User"] == "monitor-agent"
    assert service["User"] not in ("root", "nobody", "0")
    assert "DynamicUser" not in service
    assert service["NoNewPrivileges"] == "yes"


def test_token_comes_from_an_environment_file_not_the_command_line(unit):
    service = unit["Service"]
    words = shlex.split(service["ExecStart"])
    assert words[0].endswith("/bin/monitor-agent")
    assert "--token" not in words
    assert service["EnvironmentFile"].startswith("/etc/")
    # The flags are the agent's own, and with the token from that file they work.
    options = parse_options(words[1:], {TOKEN_VARIABLE: "from-the-file"})
    assert options.token == "from-the-file"
    assert options.url.startswith("wss://")


def test_restarts_always_except_when_replaced_or_misconfigured(unit):
    service = unit["Service"]
    assert service["Restart"] == "always"
    prevented = service["RestartPreventExitStatus"].split()
    assert str(EXIT_REPLACED) in prevented
    assert str(EXIT_USAGE) in prevented


def test_starts_once_the_network_is_up_and_at_boot(unit):
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing", pytrace=False)
        pytest.skip("systemd-analyze is not installed")
    # The same unit, with an executable that exists on this machine.
    text = UNIT.read_text().replace("/opt/monitor-agent/bin/monitor-agent", "/bin/true")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert Path("/bin/true").exists()
