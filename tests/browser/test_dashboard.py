"""The dashboard of a host (`/hosts/NAME/`, here the default host's) in a real
Chromium against real daphne and publisher processes."""

import asyncio
import base64
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from agent.devices import DEFAULT_NET_EXCLUDE, excluded
from agent.snapshots import format_timestamp
from metrics.store import store_snapshot
from tests.browser.conftest import ARTIFACTS, SERVICE_ENV
from tests.conftest import PASSWORD
from tests.support import processes
from tests.support.clients import metrics_url
from tests.support.hosts import HOST, host_event, host_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

LIVE_WITHIN = 15_000  # ms for the page to show a live stream
SOCKET_URL = re.compile(r"/api/ws/metrics")
EXPIRED = "Your session has expired; log in again."
REFUSED = "The server no longer accepts your session; log in again."
MODULES = processes.ROOT / "metrics" / "static" / "metrics" / "dashboard"
# A dashboard module under its collected name: the first 12 hex digits of its MD5.
HASHED_MODULE = re.compile(r"/metrics/dashboard/(?P<name>\w+)\.[0-9a-f]{12}\.js$")


@contextmanager
def daphne_on(port: int, logs: Path, **env: str) -> Iterator:
    """One daphne process on a given port (so a restarted one takes the same)."""
    processes.collect_static()
    args = [sys.executable, "-m", "runner.webserver", "-b", "127.0.0.1"]
    args += ["-p", str(port)]
    args.append("monitor.asgi:application")
    log = logs / f"daphne-{port}.log"
    env = processes.service_env(**{**SERVICE_ENV, **env})
    with processes.running(args, env, log) as process:
        processes.wait_for_port(port, process, processes.START_TIMEOUT)
        yield process


def wait_until(
    page: Page, condition: Callable[[], object], within: float, message: str
) -> None:
    """Poll `condition` until it is truthy; fail after `within` seconds.

    Waits through Playwright, which delivers the page's events (responses, frames)
    to their listeners only while one of its calls runs.
    """
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        page.wait_for_timeout(100)


def log_in(page: Page, port: int, password: str = PASSWORD) -> None:
    """Open the dashboard of the default host (unless the page is on the server
    already) and submit the login form."""
    if not page.url.startswith(f"http://127.0.0.1:{port}/"):
        page.goto(f"http://127.0.0.1:{port}/hosts/{HOST}/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def expect_live(page: Page, timeout: float = LIVE_WITHIN) -> None:
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=timeout
    )


def dataset(page: Page) -> dict:
    """The dashboard's counters: points drawn, first and last timestamps (s)."""
    return page.locator("#dashboard").evaluate("(el) => ({...el.dataset})")


def wait_for_points(page: Page, count: int, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "(n) => Number(document.getElementById('dashboard').dataset.points) >= n",
        arg=count,
        timeout=timeout,
    )


def settle(page: Page) -> None:
    """Let the page lay out and paint what it has (two animation frames)."""
    page.evaluate(
        "() => new Promise((r) => requestAnimationFrame(() =>"
        " requestAnimationFrame(r)))"
    )


def session_tokens(page: Page) -> dict:
    """The tokens the page keeps in sessionStorage."""
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('monitor.session'))")


def token_claims(token: str) -> dict:
    """The payload of a JWT, unverified."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def module_urls(page: Page) -> dict[str, str]:
    """The dashboard's modules as the page loaded them: name -> hashed URL."""
    urls = page.evaluate(
        "() => performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    return {m["name"]: url for url in urls if (m := HASHED_MODULE.search(url))}


def counted_interfaces() -> list[str]:
    """This machine's network interfaces that the snapshots count."""
    names = psutil.net_io_counters(pernic=True)
    return [name for name in names if not excluded(name, DEFAULT_NET_EXCLUDE)]


def stored_timestamps(redis_sync) -> set[int]:
    """The distinct snapshot times (Unix milliseconds) held in the Redis history."""
    texts = redis_sync.zrange(host_key("history"), 0, -1)
    stamps = (json.loads(text)["timestamp"] for text in texts)
    return {round(datetime.fromisoformat(s).timestamp() * 1000) for s in stamps}


def test_wrong_password_shows_a_message_then_the_right_one_opens_the_dashboard(
    service, user, page
):
    log_in(page, service, "not the password")
    expect(page.locator("#login-message")).to_have_text("Wrong username or password.")
    expect(page.locator("#dashboard")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "login-wrong-password.png")
    with page.expect_websocket() as opened:
        log_in(page, service)
    assert "token" not in opened.value.url, "the token is in the socket's URL"
    expect_live(page)
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#host-name")).to_have_text(re.compile(r"\S"))
    expect(page.locator("#value-cpu")).to_have_text(re.compile(r"^\d+\.\d%$"))
    # A rate, unless this machine has no interface that counts (loopback only).
    rate = r"^\d+(\.\d+)? (B|KiB|MiB|GiB)/s$" if counted_interfaces() else r"^—$"
    expect(page.locator("#value-sent")).to_have_text(re.compile(rate))
    expect(page.locator("#value-memory")).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("#detail-memory")).to_have_text(
        re.compile(r"^\d+(\.\d+)? (MiB|GiB|TiB) of \d+(\.\d+)? (GiB|TiB)$")
    )
    expect(page.locator("#partitions tr").first).to_contain_text("%")
    expect(page.locator("#chart-cpu canvas")).to_have_count(1)


def test_too_many_logins_are_told_to_wait(page, user, tmp_path, redis_sync):
    # Attempts are counted in Redis for all workers: forget the other tests' logins.
    counts = redis_sync.scan_iter(match=f"{settings.METRICS_REDIS_PREFIX}:cache:*")
    for key in list(counts):
        redis_sync.delete(key)
    port = processes.free_port()
    with daphne_on(port, tmp_path, LOGIN_RATE_PER_USERNAME="1/min"):
        log_in(page, port, "not the password")
        expect(page.locator("#login-message")).to_have_text(
            "Wrong username or password."
        )
        log_in(page, port)
        expect(page.locator("#login-message")).to_have_text(
            re.compile(r"^Too many login attempts; try again in \d+ s\.$")
        )
    expect(page.locator("#dashboard")).to_be_hidden()


def test_a_user_without_the_required_permission_is_told_so(page, user, tmp_path):
    port = processes.free_port()
    with daphne_on(port, tmp_path, METRICS_REQUIRED_PERMISSION="metrics.view_metrics"):
        log_in(page, port)
        expect(page.locator("#login-message")).to_have_text(
            "This account may not watch this host; log in as another user."
        )
    expect(page.locator("#dashboard")).to_be_hidden()


def test_values_change_between_two_snapshots(service, user, page):
    log_in(page, service)
    expect_live(page)
    before = dataset(page)
    stamp = page.locator("#last-update").get_attribute("datetime")
    values = page.locator(".tiles").inner_text()
    page.wait_for_function(
        """([stamp, values]) =>
            document.getElementById("last-update").dateTime !== stamp
            && document.querySelector(".tiles").innerText !== values""",
        arg=[stamp, values],
        timeout=10_000,
    )
    after = dataset(page)
    assert float(after["last"]) > float(before["last"])
    assert int(after["points"]) > int(before["points"])
    assert page.locator("#last-update").inner_text() != "—"


def test_chromium_compresses_with_the_server_and_reads_what_it_sends(
    service, user, page
):
    log_in(page, service)
    expect_live(page)  # the dashboard's own socket, compressed as below
    url = metrics_url(service, session_tokens(page)["access"])
    # A socket of the page's own: its first snapshot, then a ping of Chromium's
    # compressing (with the small window the server asks for) and the pong.
    seen = page.evaluate(
        """(url) => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            const types = [];
            ws.onmessage = (event) => {
                types.push(JSON.parse(event.data).type);
                if (types.length === 1) ws.send(JSON.stringify({type: "ping"}));
                if (types.includes("pong")) {
                    resolve({extensions: ws.extensions, types});
                    ws.close();
                }
            };
            ws.onclose = () => reject(new Error("closed"));
        })""",
        url,
    )
    assert seen["extensions"] == (
        "permessage-deflate; client_max_window_bits=9; server_no_context_takeover"
    )
    assert seen["types"][0] == "metrics"
    assert "pong" in seen["types"]


def test_charts_hold_history_right_after_load(service, user, context, page):
    # A first viewer makes the publisher run, so there are minutes... or seconds.
    log_in(page, service)
    expect_live(page)
    wait_for_points(page, 5)
    newcomer = context.browser.new_context()
    try:
        fresh = newcomer.new_page()
        log_in(fresh, service)
        fresh.wait_for_function(
            "() => document.getElementById('dashboard').dataset.historyPoints",
            timeout=10_000,
        )
        drawn = dataset(fresh)
        assert int(drawn["historyPoints"]) >= 5
        assert int(drawn["points"]) >= int(drawn["historyPoints"])
        expect(fresh.locator("#chart-network canvas")).to_have_count(1)
    finally:
        newcomer.close()


def test_helpers_format_units_for_people(service, page):
    page.goto(f"http://127.0.0.1:{service}/")
    # The module instance the page itself runs: the same URL, so the same module.
    formatting = module_urls(page)["formatting"]
    formatted = page.evaluate(
        """async (url) => {
            const f = await import(url);
            return [
                f.formatBytes(512), f.formatBytes(10240), f.formatBytes(17179869184),
                f.formatRate(1572864), f.formatRate(0), f.formatRate(null),
                f.formatPercent(45.25), f.formatPercent(null),
                f.formatBytes(1048576, {trim: true}),
            ];
        }""",
        formatting,
    )
    assert formatted == [
        "512 B",
        "10.0 KiB",
        "16.0 GiB",
        "1.50 MiB/s",
        "0 B/s",
        "—",
        "45.3%",
        "—",
        "1 MiB",
    ]


def test_each_module_loads_from_its_hashed_url_without_errors(service, user, page):
    responses, errors = [], []
    page.on("response", lambda r: responses.append((r.url, r.status)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Every module is loaded by one of the two pages: the overview, then a host's.
    page.goto(f"http://127.0.0.1:{service}/")
    log_in(page, service)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.goto(f"http://127.0.0.1:{service}/hosts/{HOST}/")
    expect_live(page)
    # collectstatic's manifest (the one daphne serves) names each module's hashed file.
    manifest = json.loads((Path(settings.STATIC_ROOT) / "staticfiles.json").read_text())
    static = f"http://127.0.0.1:{service}/static/"
    expected = {
        static + manifest["paths"][f"metrics/dashboard/{path.name}"]
        for path in MODULES.glob("*.js")
    }
    loaded = {url: status for url, status in responses if "/metrics/dashboard/" in url}
    assert set(loaded) == expected, "a module was loaded by another name, or not at all"
    assert set(loaded.values()) == {200}
    assert [(url, status) for url, status in responses if status >= 400] == []
    assert errors == []


def test_a_close_with_4001_returns_to_the_login_form(service, user, page):
    page.route_web_socket(SOCKET_URL, lambda ws: ws.close(code=4001, reason="auth"))
    log_in(page, service)
    expect(page.locator("#login-message")).to_have_text(REFUSED)
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_stream_without_snapshots_for_two_intervals_is_shown_stale(
    service, user, page
):
    def pass_first_snapshot_only(ws):
        server = ws.connect_to_server()
        passed = []

        def from_server(message):
            if '"metrics"' not in message or not passed:
                passed.append(message)
                ws.send(message)

        server.on_message(from_server)

    page.route_web_socket(SOCKET_URL, pass_first_snapshot_only)
    log_in(page, service)
    expect_live(page)
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "stale", timeout=5_000)
    expect(connection).to_have_text(re.compile("Stale"))


def test_logging_out_forgets_the_token_and_revokes_it(service, user, page):
    log_in(page, service)
    expect_live(page)
    refresh = session_tokens(page)["refresh"]
    with page.expect_response(re.compile(r"/api/auth/logout$")) as logout:
        page.get_by_role("button", name="Log out").click()
    assert logout.value.status == 200
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-message")).to_have_text("You have logged out.")
    assert page.evaluate("() => sessionStorage.length") == 0
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()
    reused = page.request.post(
        f"http://127.0.0.1:{service}/api/auth/refresh", data={"refresh": refresh}
    )
    assert reused.status == 401, "the server still honours the refresh token"


@pytest.mark.parametrize("offsets_lost", [False, True])
def test_page_recovers_by_itself_when_the_web_worker_restarts(
    service, user, page, redis_sync, tmp_path, offsets_lost
):
    port = processes.free_port()
    connection = page.locator("#connection")
    histories, sockets, resumes = [], [], []

    def watch_socket(ws):
        sockets.append(ws.url)
        ws.on(
            "framereceived",
            lambda payload: (
                resumes.append(json.loads(payload))
                if '"type":"resume"' in str(payload).replace(" ", "")
                else None
            ),
        )

    page.on("websocket", watch_socket)
    page.on(
        "request",
        lambda r: histories.append(r.url) if "/api/metrics/history" in r.url else None,
    )
    with daphne_on(port, tmp_path) as worker:
        log_in(page, port)
        expect_live(page)
        worker.kill()  # a crash: no close frame, and its viewer count lingers
        worker.wait()
        expect(connection).to_have_attribute("data-state", "reconnecting")
        histories.clear()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-reconnecting.png")
        if offsets_lost:
            # As after a Redis restart: the next snapshot starts a new epoch.
            redis_sync.delete(host_key("offsets"), host_key("stream"))
        # Snapshots published while the worker is down: the gap to fill.
        missed = len(stored_timestamps(redis_sync)) + 3
        wait_until(
            page,
            lambda: len(stored_timestamps(redis_sync)) >= missed,
            within=10,
            message="the publisher published nothing while the worker was down",
        )
        down_until = max(stored_timestamps(redis_sync))

    def gap() -> int:
        """Snapshots stored between the first and last drawn that are not drawn."""
        drawn = dataset(page)
        first, last = (round(float(drawn[end]) * 1000) for end in ("first", "last"))
        stored = {t for t in stored_timestamps(redis_sync) if first <= t <= last}
        return len(stored) - int(drawn["points"])

    with daphne_on(port, tmp_path):
        expect_live(page, timeout=20_000)
        page.wait_for_function(
            "(t) => Number(document.getElementById('dashboard').dataset.last) > t",
            arg=down_until / 1000,
            timeout=10_000,
        )
        # Drawn as it comes: the missed snapshots, or the history loaded meanwhile.
        wait_until(page, lambda: gap() == 0, within=10, message="the page shows a gap")
    # The page resumed from the last snapshot it had.
    assert re.search(r"[?&]since=\d+&epoch=[0-9a-f]{16}$", sockets[-1]), sockets
    assert resumes, "no resume frame"
    if offsets_lost:
        assert resumes[-1]["recovered"] is False
        assert histories, "the gap was not loaded from the history"
    else:
        assert resumes[-1]["recovered"] is True
        assert resumes[-1]["missed"] >= 3
        assert histories == [], "the page asked the history though it recovered"


def test_a_snapshot_stored_but_never_sent_to_the_page_is_resumed(
    service, user, page, redis_sync, tmp_path
):
    # A broadcast that reached no socket, as at a Redis failover: stored (with its
    # seq), never sent. The next one skips a seq, and the page resumes from its last.
    port = processes.free_port()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    with daphne_on(port, tmp_path):
        log_in(page, port)
        expect_live(page)
        latest = json.loads(redis_sync.get(host_key("latest")))
        snapshot = json.loads(latest["text"])
        for key in ("seq", "epoch", "host"):
            del snapshot[key]
        taken_at = latest["ts"] + 0.25
        snapshot["timestamp"] = format_timestamp(
            datetime.fromtimestamp(taken_at, tz=UTC)
        )
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                asyncio.run, store_snapshot(host_event(snapshot, taken_at), ttl=60)
            ).result()
        page.wait_for_function(
            "(t) => Number(document.getElementById('dashboard').dataset.last) > t",
            arg=taken_at,
            timeout=10_000,
        )
        drawn = dataset(page)
        first, last = (round(float(drawn[end]) * 1000) for end in ("first", "last"))
        stored = {t for t in stored_timestamps(redis_sync) if first <= t <= last}
        # Compared as stored_timestamps() reads them: from the text, to the ms.
        stamp = datetime.fromisoformat(snapshot["timestamp"]).timestamp()
        assert round(stamp * 1000) in stored
        assert len(stored) == int(drawn["points"]), "the page shows a gap"
    assert len(sockets) == 2, sockets
    assert re.search(r"[?&]since=\d+&epoch=[0-9a-f]{16}$", sockets[-1]), sockets


def test_an_expired_session_returns_to_the_login_form(page, user, service, tmp_path):
    # Refresh tokens rotate (each refresh gives a new one, valid for its whole
    # lifetime), so a session only expires when the page cannot refresh for longer
    # than that: a laptop asleep, a long outage. Here the refresh endpoint is cut off.
    port = processes.free_port()
    refreshes = []
    page.on(
        "response",
        lambda r: refreshes.append(r.status) if r.url.endswith("/refresh") else None,
    )
    lifetimes = {"JWT_ACCESS_TOKEN_LIFETIME": "3", "JWT_REFRESH_TOKEN_LIFETIME": "6"}
    with daphne_on(port, tmp_path, **lifetimes):
        log_in(page, port)
        expect_live(page)
        wait_until(page, lambda: 200 in refreshes, 10, "no refresh in time")
        page.route(re.compile(r"/api/auth/refresh$"), lambda route: route.abort())
        expires = token_claims(session_tokens(page)["refresh"])["exp"]
        wait_until(
            page,
            lambda: time.time() > expires + 1,
            within=15,
            message="the refresh token did not expire",
        )
        page.unroute(re.compile(r"/api/auth/refresh$"))
        expect(page.locator("#login-message")).to_have_text(EXPIRED, timeout=15_000)
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()
    assert refreshes[-1] == 401
    assert page.evaluate("() => sessionStorage.length") == 0


def test_the_socket_outlives_its_access_token_by_renewing_it(
    page, user, service, tmp_path
):
    port = processes.free_port()
    refreshed, sockets, renewals = [], [], []

    def watch_socket(ws):
        sockets.append(ws)
        ws.on(
            "framereceived",
            lambda payload: (
                renewals.append(payload) if '"auth"' in str(payload) else None
            ),
        )

    page.on("websocket", watch_socket)
    page.on(
        "response",
        lambda r: refreshed.append(r.status) if r.url.endswith("/refresh") else None,
    )
    # 10 s: the page renews at 80% (8 s), a second ahead of the server's deadline
    # even on a busy machine.
    with daphne_on(port, tmp_path, JWT_ACCESS_TOKEN_LIFETIME="10"):
        log_in(page, port)
        expect_live(page)
        # Two refreshes take the session past the lifetime of its first token.
        wait_until(
            page,
            lambda: refreshed.count(200) >= 2,
            within=30,
            message=f"the access token was not refreshed in time: {refreshed}",
        )
        expect_live(page)
        stamp = page.locator("#last-update").get_attribute("datetime")
        page.wait_for_function(
            "(t) => document.getElementById('last-update').dateTime !== t", arg=stamp
        )
    assert len(sockets) == 1, "the socket was closed and opened again"
    assert len(renewals) >= 2, "the server acknowledged no renewal"


def test_dashboard_screenshots_light_dark_and_phone(service, user, page, redis_sync):
    # Draw one unbroken stream: without the gaps the other tests left in history.
    redis_sync.delete(host_key("history"))
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, service)
    expect_live(page)
    wait_for_points(page, 15, timeout=20_000)
    page.emulate_media(color_scheme="light")
    settle(page)
    light = ARTIFACTS / "dashboard.png"
    page.screenshot(path=light)
    page.screenshot(path=ARTIFACTS / "dashboard-full.png", full_page=True)
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        # The README's picture, refreshed on demand rather than on every run.
        shutil.copyfile(light, processes.ROOT / "docs" / "dashboard.png")

    page.emulate_media(color_scheme="dark")
    page.wait_for_function("() => matchMedia('(prefers-color-scheme: dark)').matches")
    settle(page)
    page.screenshot(path=ARTIFACTS / "dashboard-dark.png")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"

    page.set_viewport_size({"width": 390, "height": 844})
    settle(page)
    page.screenshot(path=ARTIFACTS / "dashboard-phone-dark.png", full_page=True)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth"
        " - document.documentElement.clientWidth"
    )
    assert overflow == 0, "the page scrolls sideways at phone width"
    width = page.locator("#chart-cpu canvas").evaluate("(c) => c.clientWidth")
    assert 200 <= width <= 390
    page.emulate_media(color_scheme="light")
    settle(page)
    page.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)
