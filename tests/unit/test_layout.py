"""The arrows of imports run one way: monitor composes the apps, the apps use core,
agent stands alone; and every reach into a library's internals is in one module."""

import ast
import re
from pathlib import Path

import pytest

from tests.support.processes import ROOT

APPS = ("core", "accounts", "metrics", "runner", "agent")
OURS = {"core", "accounts", "metrics", "runner", "agent", "monitor"}
# Internals of daphne, Twisted, autobahn and Django that only runner/extensions.py
# may touch (by attribute or by name in a string).
INTERNALS = (
    "dataBuffer",
    "_tempDataLen",
    "writeSomeData",
    "_perMessageCompress",
    "send_state",
    "send_queue",
    "_connectionMade",
    "_timings",
    "pformat",
    "Timings",
    "_cache",
    "WebSocketFactory =",
    "valid_origin =",
)


def modules(*packages: str) -> list[Path]:
    """The production modules of some top-level packages (migrations aside)."""
    return [
        path
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def imported(path: Path) -> set[str]:
    """Every module name a file imports (absolute imports only; we use no other)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
    return names


def top_levels(path: Path) -> set[str]:
    return {name.partition(".")[0] for name in imported(path)}


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", modules(*APPS), ids=relative)
def test_no_app_module_imports_monitor(path):
    assert "monitor" not in top_levels(path)


@pytest.mark.parametrize("path", modules("core"), ids=relative)
def test_core_imports_no_app(path):
    assert not top_levels(path) & (OURS - {"core"})


@pytest.mark.parametrize("path", modules("agent"), ids=relative)
def test_agent_imports_only_itself_and_libraries_without_django(path):
    found = top_levels(path)
    assert not found & (OURS - {"agent"})
    assert not found & {"django", "channels", "rest_framework", "daphne", "redis"}


def test_the_fanout_does_not_import_the_publisher():
    assert "metrics.publisher" not in imported(ROOT / "metrics" / "fanout.py")


def test_monitor_holds_only_the_composition():
    names = {path.name for path in (ROOT / "monitor").glob("*.py")}
    assert names == {
        "__init__.py",
        "settings.py",
        "asgi.py",
        "routing.py",
        "urls.py",
        "health.py",
    }


@pytest.mark.parametrize(
    "path",
    [
        path
        for path in modules(*APPS, "monitor")
        if path != ROOT / "runner" / "extensions.py"
    ],
    ids=relative,
)
def test_library_internals_are_touched_only_in_runner_extensions(path):
    text = path.read_text()
    found = [name for name in INTERNALS if re.search(rf"\b{re.escape(name)}", text)]
    assert found == []
