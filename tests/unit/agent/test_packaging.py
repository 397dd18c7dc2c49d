"""agent/pyproject.toml: `pip install ./agent` gets the versions the suite uses."""

import re
import tomllib

from agent import __version__
from agent.cli import main
from tests.support.children import ROOT

PYPROJECT = tomllib.loads((ROOT / "agent" / "pyproject.toml").read_text())


def pinned_in_requirements() -> dict[str, str]:
    """name -> version of every `name==version` line in the requirements files."""
    pins = {}
    for path in ROOT.glob("requirements*.txt"):
        for name, version in re.findall(
            r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.MULTILINE
        ):
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_dependencies_are_psutil_and_websockets_pinned_as_in_requirements():
    dependencies = PYPROJECT["project"]["dependencies"]
    pins = pinned_in_requirements()
    assert sorted(name.split("==")[0] for name in dependencies) == [
        "psutil",
        "websockets",
    ]
    for dependency in dependencies:
        name, _, version = dependency.partition("==")
        assert version == pins[name], f"{name}: {version} here, {pins[name]} pinned"


def test_the_command_is_monitor_agent():
    assert PYPROJECT["project"]["scripts"] == {"monitor-agent": "agent.cli:main"}
    assert callable(main)
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
