"""Installing to run takes what the service needs; the test tools are a set apart.

requirements.txt is what ./run, the image and a deployment by hand install;
requirements-dev.txt adds the tests, the linter and the browser tools, for
./run-tests and CI. Both are pinned, and the runtime set is complete on its own.
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.requirements_met import pins
from tests.support.processes import ROOT

RUNTIME = ROOT / "requirements.txt"
DEVELOPMENT = ROOT / "requirements-dev.txt"
# What only the tests, the linter and the browser tests use.
TOOLS = {"pytest", "pytest-django", "pytest-asyncio", "playwright", "ruff", "pyyaml"}
# The production code: every package but the tests.
PACKAGES = ("accounts", "agent", "core", "metrics", "monitor", "runner")
# Packages of an installed distribution that another one pulls in under a marker or
# extra this platform does not use are not required here.
ENVIRONMENT = default_environment()


def pinned(path: Path) -> dict[str, str]:
    """A requirements file's pins (with the files it includes), by canonical name."""
    return {canonicalize_name(name): version for name, version in pins(path)}


def own_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def third_party_imports() -> set[str]:
    """Top-level modules the production code imports that are not ours or stdlib."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.partition(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.partition(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def test_every_line_of_both_files_is_pinned():
    for path in (RUNTIME, DEVELOPMENT):
        for line in own_lines(path):
            assert line == "-r requirements.txt" or re.fullmatch(
                r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9.]*", line
            ), f"{path.name}: {line!r} is not pinned"


def test_the_runtime_set_holds_no_test_lint_or_browser_tool():
    assert not TOOLS & set(pinned(RUNTIME))


def test_the_development_set_is_the_runtime_set_and_the_tools():
    assert own_lines(DEVELOPMENT)[0] == "-r requirements.txt"
    development = pinned(DEVELOPMENT)
    assert development.items() >= pinned(RUNTIME).items()
    assert set(development) >= TOOLS


def test_the_runtime_set_provides_every_module_the_service_imports():
    providers = importlib.metadata.packages_distributions()
    runtime = pinned(RUNTIME)
    for module in sorted(third_party_imports()):
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        assert distributions & set(runtime), f"{module} is not in requirements.txt"


@pytest.mark.parametrize("path", [RUNTIME, DEVELOPMENT], ids=lambda p: p.name)
def test_each_set_holds_every_dependency_of_what_it_pins(path):
    """pip would otherwise fetch unpinned versions of what is missing."""
    wanted = pinned(path)
    extras = {"twisted": {"tls"}}  # daphne requires twisted[tls]
    for name in wanted:
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            needed = any(
                requirement.marker is None
                or requirement.marker.evaluate({**ENVIRONMENT, "extra": extra})
                for extra in {"", *extras.get(name, ())}
            )
            if needed:
                dependency = canonicalize_name(requirement.name)
                assert dependency in wanted, f"{name} needs {requirement}"


def test_the_scripts_install_the_set_they_need():
    assert "requirements=requirements.txt\n" in (ROOT / "run").read_text()
    assert "requirements=requirements-dev.txt\n" in (ROOT / "run-tests").read_text()
    assert "./run-tests" in (ROOT / ".ci" / "run").read_text()


def test_the_image_installs_the_runtime_set_only():
    instructions = own_lines(ROOT / "Dockerfile")
    assert "RUN pip install -r requirements.txt" in instructions
    assert not [line for line in instructions if "requirements-dev" in line]
