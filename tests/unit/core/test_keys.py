"""One function names every Redis key, by the names the service always used, and
core/keys.py lists every key the code names."""

import ast
import re

import pytest

import core.keys
from core.keys import redis_key
from tests.support.processes import ROOT

PRODUCTION = ("core", "accounts", "metrics", "runner", "agent", "monitor")


def test_keys_keep_their_names(settings):
    settings.METRICS_REDIS_PREFIX = "monitor"
    assert redis_key("host", "db-1", "latest") == "monitor:host:db-1:latest"
    assert redis_key("host", "db-1", "history") == "monitor:host:db-1:history"
    assert redis_key("publisher", "heartbeat") == "monitor:publisher:heartbeat"
    assert redis_key("host", "db-1", "leader") == "monitor:host:db-1:leader"
    assert redis_key("viewers", "db-1") == "monitor:viewers:db-1"


def test_the_cache_and_the_channel_layer_live_under_the_prefix(settings):
    prefix = settings.METRICS_REDIS_PREFIX
    assert settings.CACHES["default"]["KEY_PREFIX"] == f"{prefix}:cache"
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] == f"{prefix}:"


def listed_keys() -> set[tuple[str, ...]]:
    """The keys in core/keys.py's table, as the parts redis_key() takes."""
    keys = set()
    for row in re.findall(r"^\| `P:([^`]*)`", core.keys.__doc__, re.MULTILINE):
        keys.add(without_tail(tuple(row.split(":"))) or ("",))
    return keys


def without_tail(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Parts without a trailing `...` (what comes after the named ones)."""
    return parts[:-1] if parts and parts[-1] == "..." else parts


def part(node: ast.expr) -> str:
    """A literal part as written; `...` for a part computed at run time."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return "..."


def redis_key_calls() -> list[tuple[str, tuple]]:
    """(file, parts) of every redis_key(...) call in the production code."""
    calls = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "redis_key"
                ):
                    parts = without_tail(tuple(part(arg) for arg in node.args))
                    calls.append((str(path.relative_to(ROOT)), parts))
    return calls


@pytest.mark.parametrize(("path", "parts"), redis_key_calls())
def test_every_key_the_code_names_is_listed_in_core_keys(path, parts):
    assert parts in listed_keys()


def test_every_listed_key_is_used():
    assert {parts for _, parts in redis_key_calls()} == listed_keys()
