"""`pip install ./agent` gives a working `monitor-agent` command.

Offline, so that it runs anywhere the suite does: the wheel is built from a copy of
agent/ with this environment's setuptools and installed without its dependencies
into a fresh virtualenv, which borrows psutil and websockets from this one.
"""

import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.agent_stub import AgentStub
from tests.support.agents import agent_env, running_agent
from tests.support.children import ROOT
from tests.support.waiting import eventually

TOKEN = "install-test-token"


def run(*args: str | Path, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=agent_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **env),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(autouse=True)
def _fresh_redis_keys():
    """Overrides tests/e2e/conftest.py's: nothing here touches Redis."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """The agent's wheel, and the bin/ folder of a virtualenv it is installed in."""
    work = tmp_path_factory.mktemp("agent-install")
    source = work / "agent"
    shutil.copytree(
        ROOT / "agent",
        source,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    wheels = work / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        wheels,
        source,
        cwd=work,
    )
    (wheel,) = wheels.glob("monitor_agent-*.whl")
    environment = work / "venv"
    venv.create(environment, with_pip=True)
    run(environment / "bin" / "pip", "install", "--no-deps", wheel, cwd=work)
    return wheel, environment / "bin"


def test_wheel_pins_psutil_and_websockets_and_names_the_command(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA")))
        entry_points = archive.read(
            next(n for n in names if n.endswith("entry_points.txt"))
        )
    requires = sorted(
        line.removeprefix("Requires-Dist: ")
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist: ")
    )
    pyproject = tomllib.loads((ROOT / "agent" / "pyproject.toml").read_text())
    assert requires == sorted(pyproject["project"]["dependencies"])
    assert "monitor-agent = agent.cli:main" in entry_points.decode()
    # The agent alone: no server code in the wheel.
    packages = {name.split("/")[0] for name in names if name.endswith(".py")}
    assert packages == {"agent"}


async def test_installed_command_streams_to_a_server(installed, tmp_path):
    _, bin_dir = installed
    borrowed = ":".join(site.getsitepackages())
    env = agent_env(PYTHONPATH=borrowed)
    version = run(
        bin_dir / "monitor-agent", "--version", cwd=tmp_path, PYTHONPATH=borrowed
    )
    assert version.strip() == "monitor-agent 0.1.0"
    async with AgentStub({TOKEN: "installed"}, live=True) as stub:
        flags = ["--server", stub.url, "--token", TOKEN, "--interval", "0.5"]
        command = (str(bin_dir / "monitor-agent"),)
        async with running_agent(
            tmp_path / "agent.log", *flags, command=command, env=env
        ):
            await eventually(
                lambda: stub.metrics(), within=20, message="the agent sent nothing"
            )
    assert stub.rejected == []
    # It ran the installed copy, not this checkout's.
    where = run(
        bin_dir / "python", "-c", "import agent; print(agent.__file__)", cwd=tmp_path
    )
    assert where.startswith(str(bin_dir.parent))
