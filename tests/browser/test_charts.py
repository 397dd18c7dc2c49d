"""What the dashboard draws from given snapshots: axes, units, missing figures, and
the page's own icon. A real daphne serves a history the test wrote into Redis; no
publisher runs, so the page shows exactly those snapshots."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from agent.snapshots import build_snapshot
from tests.browser.conftest import SERVICE_ENV
from tests.browser.test_dashboard import log_in, module_urls
from tests.conftest import delete_own_keys
from tests.support import processes
from tests.support.hosts import host_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

KIB = 1024


@pytest.fixture(scope="module")
def quiet_service(browser, static_files, django_db_setup, redis_sync, tmp_path_factory):
    """A real daphne and no publisher: the page draws what the test stored."""
    logs = tmp_path_factory.mktemp("quiet")
    with processes.daphne(logs, **SERVICE_ENV) as (_, port):
        yield port, logs


@pytest.fixture
def history(redis_sync) -> Iterator:
    """Store snapshots in the history the dashboard loads on open."""
    delete_own_keys(redis_sync)

    def store(*snapshots: dict) -> None:
        for snapshot in snapshots:
            published = datetime.fromisoformat(snapshot["timestamp"]).timestamp()
            redis_sync.zadd(host_key("history"), {json.dumps(snapshot): published})

    yield store
    delete_own_keys(redis_sync)


def snapshot(seconds_ago: float, *, sent: float | None = 1.0, **cpu) -> dict:
    """A metrics message of `seconds_ago`, with the given sent rate and CPU figures."""
    figures = {"usage_percent": 12.5, "user": 10.0, "system": 2.5, "idle": 87.5}
    figures |= cpu
    data = {
        "cpu": {
            **figures,
            "per_core": cpu.get("per_core", [12.5, 12.5]),
            "frequency_mhz": None,
            "load_avg": [0.1, 0.1, 0.1],
        },
        "memory": {
            "usage_percent": 40.0,
            "total_bytes": 8 * KIB**3,
            "used_bytes": 3 * KIB**3,
            "available_bytes": 5 * KIB**3,
            "swap_percent": 0.0,
        },
        "network": {
            "bytes_sent_per_sec": sent,
            "bytes_recv_per_sec": sent,
            "interfaces": {"eth0": {"bytes_sent_per_sec": sent}},
        },
        "disk": {"partitions": {}, "io": {}},
    }
    return build_snapshot(data, datetime.fromtimestamp(time.time() - seconds_ago, UTC))


def open_dashboard(page: Page, port: int, points: int) -> None:
    log_in(page, port)
    page.wait_for_function(
        "(n) => Number(document.getElementById('dashboard').dataset.points) >= n",
        arg=points,
        timeout=15_000,
    )


def axis_labels(page: Page, chart: str, axis: int) -> list[str]:
    """The labels a chart's axis shows (0: time, 1: values), as uPlot drew them.

    The charts module the page runs (same URL, same module) holds the uPlot
    instances; uPlot keeps each axis's last labels in `_values`.
    """
    return page.evaluate(
        """async ([url, chart, axis]) => {
            const { charts } = await import(url);
            return charts.plots[chart].axes[axis]._values;
        }""",
        [module_urls(page)["charts"], chart, axis],
    )


def test_one_point_gets_time_labels_around_it(quiet_service, history, user, page):
    port, _ = quiet_service
    history(snapshot(5))
    open_dashboard(page, port, 1)
    for chart in ("cpu", "network"):
        labels = axis_labels(page, chart, 0)
        assert len(labels) >= 2
        assert len(set(labels)) == len(labels), labels
        assert "00:00" not in labels


def test_the_network_axis_shows_one_unit(quiet_service, history, user, page):
    port, _ = quiet_service
    rates = [200.0, 700.0, 1_000.0, 1_500.0, 400.0]
    history(*(snapshot(5 * (len(rates) - i), sent=r) for i, r in enumerate(rates)))
    open_dashboard(page, port, len(rates))
    labels = axis_labels(page, "network", 1)
    units = {label.split(" ", 1)[1] for label in labels}
    assert len(units) == 1, labels
    assert all(label[0].isdigit() for label in labels), labels


def test_the_network_axis_shows_one_unit_across_a_binary_step(
    quiet_service, history, user, page
):
    port, _ = quiet_service
    rates = [3 * KIB, 300 * KIB, 900.0 * KIB]
    history(*(snapshot(5 * (len(rates) - i), sent=r) for i, r in enumerate(rates)))
    open_dashboard(page, port, len(rates))
    labels = axis_labels(page, "network", 1)
    assert len({label.split(" ", 1)[1] for label in labels}) == 1, labels


def test_figures_that_were_not_measured_show_as_dashes(
    quiet_service, history, user, page
):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    port, _ = quiet_service
    unmeasured = {"usage_percent": None, "user": None, "system": None, "idle": None}
    history(
        snapshot(10),
        snapshot(5, sent=None, per_core=[None, 25.0], **unmeasured),
    )
    open_dashboard(page, port, 2)
    expect(page.locator("#value-cpu")).to_have_text("—")
    expect(page.locator("#value-sent")).to_have_text("—")
    expect(page.locator("#value-recv")).to_have_text("—")
    expect(page.locator("#detail-cpu")).to_have_text("user — · sys —")
    expect(page.locator("#cores li").first).to_contain_text("—")
    expect(page.locator("#value-memory")).to_have_text("40.0%")
    assert errors == []


def test_pages_have_an_icon_and_no_request_for_one_is_a_404(quiet_service, user, page):
    port, logs = quiet_service
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    base = f"http://127.0.0.1:{port}"
    page.goto(f"{base}/")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    for url in (base + icon, f"{base}/favicon.ico"):
        response = page.request.get(url)
        assert response.status == 200, url
        assert response.headers["content-type"].startswith("image/")
    page.goto(f"{base}/admin/login/")
    assert failed == []
    log = (logs / f"daphne-{port}.log").read_text()
    icon_lines = [line for line in log.splitlines() if "favicon" in line]
    assert icon_lines
    assert not [line for line in icon_lines if "WARNING" in line or '" 404 ' in line]
    assert "Not Found" not in log
