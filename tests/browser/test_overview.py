"""The overview (`/`) in a real Chromium against real daphne and agent processes:
a card per host the user may see, with values that change, offline within three
intervals of an agent's death, gone when the grant goes (and the open detail page of
that host saying so), the cards' links and the host switcher, the filter and the
order, phone width and the dark theme; the README's screenshots."""

import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from metrics.hosts import create_host
from metrics.models import Host
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_charts import snapshot
from tests.browser.test_dashboard import (
    daphne_on,
    expect_live,
    log_in,
    module_urls,
    settle,
    wait_until,
)
from tests.support import processes
from tests.support.agents import start_agent
from tests.support.hosts import HOST, host_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

logger = logging.getLogger(__name__)

INTERVAL = 1.0  # the agents' live interval, and the service's (conftest)

AGENT_HOSTS = ("alpha", "beta")
FLEET_URL = "/api/ws/fleet"
PHONE = {"width": 390, "height": 844}


@contextmanager
def agent(port: int, token: str, log: Path) -> Iterator[subprocess.Popen]:
    """A real agent (`python -m agent`) of the host whose token it is."""
    server = f"http://127.0.0.1:{port}"
    flags = ["--server", server, "--token", token, "--interval", f"{INTERVAL:g}"]
    process = start_agent(log, [sys.executable, "-m", "agent", *flags])
    try:
        yield process
    finally:
        processes.stop_process(process)


@pytest.fixture
def agents(service, user, tmp_path) -> Iterator[dict[str, subprocess.Popen]]:
    """alpha's and beta's agents, both hosts granted to alice, who sees no other:
    not the publisher's host, which the tests' watchers see."""
    user.groups.clear()
    with ExitStack() as stack:
        running = {}
        for name in AGENT_HOSTS:
            host, token = create_host(name)
            host.viewers.add(user)
            log = tmp_path / f"agent-{name}.log"
            running[name] = stack.enter_context(agent(service, token, log))
        yield running


def open_overview(page: Page, port: int) -> None:
    """Open `/`, log in as alice, wait for a card of each agent's host, seen."""
    page.goto(f"http://127.0.0.1:{port}/")
    log_in(page, port)
    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=15_000
    )
    for name in AGENT_HOSTS:
        expect(card(page, name)).to_have_attribute("data-online", "true")
        # Seen: a frame brought the figures of a snapshot of the host.
        expect(card(page, name).locator('[data-figure="cpu"]')).to_contain_text("%")


def card(page: Page, name: str):
    return page.locator(f'.card[data-host="{name}"]')


def shown_hosts(page: Page) -> list[str]:
    """The hosts of the cards on show, in their order."""
    return page.locator(".card").evaluate_all(
        "(cards) => cards.map((c) => c.dataset.host)"
    )


def figures(page: Page, name: str) -> str:
    return card(page, name).locator(".figures").inner_text()


def test_the_overview_shows_a_card_per_visible_host_with_values_that_change(
    service, agents, page
):
    open_overview(page, service)
    assert sorted(shown_hosts(page)) == sorted(AGENT_HOSTS)  # not the publisher's
    expect(page.locator("#host-count")).to_have_text("2 hosts")
    percent = re.compile(r"^\d+\.\d%$")
    for name in AGENT_HOSTS:
        each = card(page, name)
        expect(each).to_have_attribute("href", f"/hosts/{name}/")
        expect(each.locator(".card-state")).to_have_text("online")
        expect(each.locator(".card-seen")).to_be_hidden()
        for figure in ("cpu", "memory", "disk"):
            expect(each.locator(f'[data-figure="{figure}"]')).to_have_text(percent)
        expect(each.locator('[data-figure="recv"]')).to_contain_text("/s")
    # Values that change: each card's figures and its sparkline, frame after frame.
    before = {name: figures(page, name) for name in AGENT_HOSTS}
    points = {name: sparkline_points(page, name) for name in AGENT_HOSTS}
    for name in AGENT_HOSTS:
        page.wait_for_function(
            """([name, text, points]) => {
                const card = document.querySelector(`.card[data-host="${name}"]`);
                const line = card.querySelector(".sparkline");
                return card.querySelector(".figures").innerText !== text
                    && Number(line.dataset.points) > points;
            }""",
            arg=[name, before[name], points[name]],
            timeout=15_000,
        )
    path = card(page, AGENT_HOSTS[0]).locator(".sparkline path").get_attribute("d")
    assert path.startswith("M"), path
    assert "L" in path, path


def sparkline_points(page: Page, name: str) -> int:
    return int(card(page, name).locator(".sparkline").get_attribute("data-points"))


def test_a_killed_agents_card_turns_offline_within_three_intervals(
    service, agents, page
):
    open_overview(page, service)
    killed = AGENT_HOSTS[1]
    started = time.monotonic()
    agents[killed].send_signal(signal.SIGKILL)
    page.wait_for_function(
        '(name) => document.querySelector(`.card[data-host="${name}"]`)'
        ".dataset.online === 'false'",
        arg=killed,
        timeout=(3 * INTERVAL + 1) * 1000,
        polling=50,
    )
    took = time.monotonic() - started
    logger.info("card offline %.2f s after SIGKILL", took)
    assert took <= 3 * INTERVAL + 1
    gone = card(page, killed)
    expect(gone.locator(".card-state")).to_have_text("offline")
    expect(gone.locator(".card-seen")).to_have_text(
        re.compile(r"^last seen \d+ s ago$")
    )
    # Offline hosts come first; the other host stays online.
    assert shown_hosts(page) == [killed, AGENT_HOSTS[0]]
    expect(card(page, AGENT_HOSTS[0])).to_have_attribute("data-online", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "overview-offline.png")


def test_after_a_reconnect_the_sparklines_gap_is_loaded_from_the_history(
    service, user, page, redis_sync, tmp_path
):
    # The publisher's host (which the tests' users see) on a worker of this test's.
    port = processes.free_port()
    histories = []
    page.on(
        "request",
        lambda r: histories.append(r.url) if "/api/metrics/history" in r.url else None,
    )
    connection = page.locator("#connection")
    with daphne_on(port, tmp_path, METRICS_INTERVAL="1") as worker:
        page.goto(f"http://127.0.0.1:{port}/")
        log_in(page, port)
        expect(connection).to_have_attribute("data-state", "live", timeout=15_000)
        expect(card(page, HOST).locator('[data-figure="cpu"]')).to_contain_text("%")
        worker.kill()
        worker.wait()
        expect(connection).to_have_attribute("data-state", "reconnecting")
        before = sparkline_points(page, HOST)
        histories.clear()
        stored = len(redis_sync.zrange(host_key("history"), 0, -1))
        wait_until(
            page,
            lambda: len(redis_sync.zrange(host_key("history"), 0, -1)) >= stored + 5,
            within=10,
            message="the publisher published nothing while the worker was down",
        )
    with daphne_on(port, tmp_path, METRICS_INTERVAL="1"):
        expect(connection).to_have_attribute("data-state", "live", timeout=20_000)
        wait_until(
            page,
            lambda: any(f"host={HOST}" in url for url in histories),
            within=10,
            message="the gap was not asked of the history",
        )
        seconds = int(re.search(r"seconds=(\d+)", histories[0])[1])
        assert seconds < 600, histories  # the gap, not the whole ten minutes
        # The snapshots of the gap drawn at once, not only the frames from now on.
        page.wait_for_function(
            """([name, points]) => Number(document.querySelector(
                `.card[data-host="${name}"] .sparkline`).dataset.points) >= points""",
            arg=[HOST, before + 5],
            timeout=3_000,
        )


def test_a_grant_removed_takes_the_card_away_and_the_host_page_says_so(
    service, agents, user, context, page
):
    name = AGENT_HOSTS[0]
    open_overview(page, service)
    detail = context.new_page()
    sockets = []
    detail.on("websocket", lambda ws: sockets.append(ws.url))
    detail.goto(f"http://127.0.0.1:{service}/hosts/{name}/")
    log_in(detail, service)
    expect_live(detail)

    started = time.monotonic()
    Host.objects.get(name=name).viewers.remove(user)  # m2m_changed, as the admin
    expect(detail.locator("#missing-message")).to_have_text(
        "Your access to this host was withdrawn.", timeout=5_000
    )
    withdrawn = time.monotonic() - started
    expect(card(page, name)).to_have_count(0, timeout=5_000)
    gone = time.monotonic() - started
    logger.info("withdrawn shown %.2f s, card gone %.2f s after", withdrawn, gone)
    assert shown_hosts(page) == [AGENT_HOSTS[1]]
    expect(page.locator("#host-count")).to_have_text("1 host")
    expect(detail.locator("#dashboard")).to_be_hidden()
    opened = len(sockets)
    detail.wait_for_timeout(2_000)
    assert len(sockets) == opened, "the page reconnected to a host withdrawn"
    expect(detail.get_by_role("link", name="Show all hosts")).to_have_attribute(
        "href", "/"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    detail.screenshot(path=ARTIFACTS / "dashboard-access-withdrawn.png")


def test_a_card_opens_its_hosts_page_whose_switcher_leads_to_the_other(
    service, agents, page
):
    first, second = AGENT_HOSTS
    open_overview(page, service)
    card(page, first).click()
    expect(page).to_have_url(f"http://127.0.0.1:{service}/hosts/{first}/")
    expect_live(page)
    expect(page.locator("#host-name")).to_have_text(first)
    switcher = page.get_by_label("Host", exact=True)
    expect(switcher).to_have_value(first)
    options = switcher.locator("option").all_inner_texts()
    assert set(AGENT_HOSTS) <= set(options), options
    switcher.select_option(second)
    expect(page).to_have_url(f"http://127.0.0.1:{service}/hosts/{second}/")
    expect_live(page)
    expect(page.locator("#host-name")).to_have_text(second)
    page.get_by_role("link", name="All hosts").click()
    expect(page).to_have_url(f"http://127.0.0.1:{service}/")
    expect(card(page, second)).to_be_visible()


def test_the_filter_keeps_the_matching_cards_and_the_url_keeps_the_filter(
    service, agents, page
):
    open_overview(page, service)
    page.get_by_label("Filter").fill("ALP")
    assert shown_hosts(page) == ["alpha"]
    expect(page.locator("#host-count")).to_have_text("1 of 2 hosts")
    assert page.url.endswith("/?q=ALP")
    page.reload()
    expect(page.get_by_label("Filter")).to_have_value("ALP")
    expect(page.locator(".card")).to_have_count(1)
    page.get_by_label("Filter").fill("")
    page.get_by_label("Offline only").check()
    expect(page.locator(".card")).to_have_count(0)
    expect(page.locator("#no-cards")).to_have_text("No host matches the filter.")
    page.get_by_label("Offline only").uncheck()
    expect(page.locator(".card")).to_have_count(2)


def test_the_order_puts_offline_then_busy_hosts_first(service, page):
    """The order rule (docs/protocol.md), through the page's own module."""
    page.goto(f"http://127.0.0.1:{service}/")
    urls = module_urls(page)
    ordered = page.evaluate(
        """async ([fleetUrl, formattingUrl]) => {
            const fleet = await import(fleetUrl);
            const f = await import(formattingUrl);
            const entry = (host, online, cpu, memory, disk) => ({
                host, online, last_seen: null, cpu_percent: cpu,
                memory_percent: memory, disk_max_percent: disk,
            });
            fleet.add({timestamp: new Date().toISOString(), hosts: [
                entry("a-idle", true, 3, 20, 30),
                entry("b-full-disk", true, 5, 10, 97),
                entry("c-busy", true, 91, 30, 50),
                entry("d-down", false, 99, 99, 99),
                entry("e-new", true, null, null, null),
                entry("f-cpu", true, 45, 20, 41),
                entry("g-cpu", true, 49, 20, 30),
                entry("h-away", false, null, null, null),
            ]}, 1);
            const order = fleet.ordered().map((e) => e.host);
            fleet.clear();
            return [order, [0.4, 42, 180, 7200, 200000].map(f.formatAgo)];
        }""",
        [urls["fleet"], urls["formatting"]],
    )
    assert ordered == [
        [
            "d-down",
            "h-away",
            "b-full-disk",
            "c-busy",
            "f-cpu",
            "g-cpu",
            "a-idle",
            "e-new",
        ],
        ["just now", "42 s ago", "3 min ago", "2 h ago", "2 d ago"],
    ]


def overflow(page: Page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth"
        " - document.documentElement.clientWidth"
    )


@pytest.fixture
def past(redis_sync) -> None:
    """Ten minutes of history for the agents' hosts (a snapshot every 5 s, the CPU
    in waves), so that the screenshots' sparklines span their whole width."""
    for index, name in enumerate(AGENT_HOSTS):
        for seconds_ago in range(600, 0, -5):
            wave = math.sin(seconds_ago / (40 + 25 * index)) + 1
            cpu = round(10 + 30 * wave + 5 * index, 1)
            message = snapshot(seconds_ago, usage_percent=cpu)
            published = datetime.fromisoformat(message["timestamp"]).timestamp()
            key = host_key("history", host=name)
            redis_sync.zadd(key, {json.dumps(message): published})


def test_overview_at_phone_width_and_in_both_themes(service, past, agents, page):
    open_overview(page, service)
    for name in AGENT_HOSTS:
        page.wait_for_function(
            "(name) => Number(document.querySelector("
            '`.card[data-host="${name}"] .sparkline`).dataset.points) >= 125',
            arg=name,
        )
    agents[AGENT_HOSTS[1]].send_signal(signal.SIGKILL)  # an offline card, too
    expect(card(page, AGENT_HOSTS[1])).to_have_attribute("data-online", "false")
    ARTIFACTS.mkdir(exist_ok=True)
    page.emulate_media(color_scheme="light")
    settle(page)
    light = ARTIFACTS / "overview.png"
    page.screenshot(path=light)
    lefts = page.locator(".card").evaluate_all(
        "(cards) => cards.map((c) => c.getBoundingClientRect().left)"
    )
    assert len(set(lefts)) == 2, "the cards are not side by side on a laptop"

    page.set_viewport_size(PHONE)
    settle(page)
    phone = ARTIFACTS / "overview-phone.png"
    page.screenshot(path=phone, full_page=True)
    assert overflow(page) == 0, "the overview scrolls sideways at phone width"
    boxes = page.locator(".card").evaluate_all(
        "(cards) => cards.map((c) => c.getBoundingClientRect().toJSON())"
    )
    assert len({box["left"] for box in boxes}) == 1, "more than one column on a phone"
    assert all(box["width"] <= PHONE["width"] for box in boxes)

    page.emulate_media(color_scheme="dark")
    page.wait_for_function("() => matchMedia('(prefers-color-scheme: dark)').matches")
    settle(page)
    page.screenshot(path=ARTIFACTS / "overview-phone-dark.png", full_page=True)
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"
    panel = card(page, AGENT_HOSTS[0]).evaluate(
        "(c) => getComputedStyle(c).backgroundColor"
    )
    assert panel == "rgb(24, 28, 34)"
    assert overflow(page) == 0
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        # The README's pictures, refreshed on demand rather than on every run.
        for shot in (light, phone):
            shutil.copyfile(shot, processes.ROOT / "docs" / shot.name)
