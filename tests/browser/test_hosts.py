"""The dashboard of one host, `/hosts/NAME/`, in a real Chromium against real daphne
and publisher processes: the host it asks for, a host that goes offline, a host the
server does not know, and the switcher between hosts."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_dashboard import SOCKET_URL, expect_live, log_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

HISTORY_URL = re.compile(r"/api/metrics/history\?")
HOSTS_URL = re.compile(r"/api/hosts$")


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture
def host(service, user, page) -> str:
    """The name of the host the service streams by default (its local publisher's),
    as the history names it."""
    api = page.request
    login = api.post(
        f"{base_url(service)}/api/auth/login",
        data={"username": "alice", "password": PASSWORD},
    )
    token = login.json()["access"]
    history = api.get(
        f"{base_url(service)}/api/metrics/history?seconds=1",
        headers={"Authorization": f"Bearer {token}"},
    )
    name = history.json()["host"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,62}", name), name
    return name


def history_requests(page: Page) -> list[str]:
    """The URLs of the history requests the page makes from now on."""
    urls = []
    page.on(
        "request", lambda r: urls.append(r.url) if HISTORY_URL.search(r.url) else None
    )
    return urls


def open_host_page(page: Page, port: int, name: str) -> None:
    """Open `/hosts/NAME/` and log in there."""
    page.goto(f"{base_url(port)}/hosts/{name}/")
    log_in(page, port)


def requires_hosts_api(page: Page, port: int) -> None:
    """Skip a test of the server's hosts until this build has them (issue 13)."""
    if page.request.get(f"{base_url(port)}/api/hosts").status == 404:
        pytest.skip("the server does not serve hosts yet (GET /api/hosts is a 404)")


def test_a_host_page_asks_the_history_and_the_socket_for_its_host(service, host, page):
    histories = history_requests(page)
    with page.expect_websocket() as opened:
        open_host_page(page, service, host)
    assert query_of(opened.value.url) == {"host": [host]}
    expect_live(page)
    expect(page.locator("#host-name")).to_have_text(host)
    assert page.title() == f"{host} · Host monitor"
    assert histories, "the page loaded no history"
    assert {query_of(url)["host"][0] for url in histories} == {host}


def test_a_close_with_4004_says_no_such_host_and_stops(service, host, page):
    opened = []

    def refuse(ws: WebSocketRoute) -> None:
        opened.append(ws.url)
        ws.close(code=4004, reason="no such host")

    page.route_web_socket(SOCKET_URL, refuse)
    open_host_page(page, service, host)
    expect(page.locator("#missing-message")).to_have_text(f"No such host: {host}")
    link = page.get_by_role("link", name="Show all hosts")
    expect(link).to_have_attribute("href", "/")
    expect(page.locator("#dashboard")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "missing")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-no-such-host.png")
    # Still logged in, and no reconnecting: one socket in several backoff delays.
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.wait_for_timeout(3_000)
    assert len(opened) == 1, "the page reconnected to a host that does not exist"
    link.click()
    expect(page).to_have_url(f"{base_url(service)}/")
    expect(page.locator("#overview")).to_be_visible()


def test_a_history_answering_404_says_no_such_host_and_opens_no_socket(
    service, user, page
):
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.route(HISTORY_URL, lambda route: route.fulfill(status=404, body="{}"))
    open_host_page(page, service, "gone")
    expect(page.locator("#missing-message")).to_have_text("No such host: gone")
    page.wait_for_timeout(2_000)
    assert sockets == []


def test_an_unknown_host_is_told_so_by_the_server(service, user, page):
    """Waits for the server side of issue 13 (skipped until then)."""
    requires_hosts_api(page, service)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    open_host_page(page, service, "no-such-host")
    expect(page.locator("#missing-message")).to_have_text("No such host: no-such-host")
    expect(page.locator("#dashboard")).to_be_hidden()
    page.wait_for_timeout(3_000)
    # The history's 404 or the socket's 4004 (whichever the server says first): no
    # more than the one socket either way.
    assert len(sockets) <= 1


class HeldStream:
    """The page's socket through a relay that can hold the server's snapshots back
    and send the page frames of its own."""

    def __init__(self) -> None:
        self.route: WebSocketRoute | None = None
        self.holding = False

    def __call__(self, ws: WebSocketRoute) -> None:
        self.route = ws
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if not (self.holding and '"metrics"' in str(message)):
                ws.send(message)

        server.on_message(from_server)

    def send(self, frame: dict) -> None:
        assert self.route is not None, "the page opened no socket"
        self.route.send(json.dumps(frame))


def test_an_offline_host_is_shown_until_data_flows_again(service, host, page):
    stream = HeldStream()
    page.route_web_socket(SOCKET_URL, stream)
    open_host_page(page, service, host)
    expect_live(page)
    offline = page.locator("#host-offline")
    connection = page.locator("#connection")
    expect(offline).to_be_hidden()

    stream.holding = True
    stream.send({"type": "host", "host": host, "online": False})
    expect(offline).to_be_visible()
    expect(offline).to_have_text("offline")
    expect(connection).to_have_attribute("data-state", "offline")
    expect(connection).to_have_text("Host offline")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-host-offline.png")
    # No snapshots for more than two intervals (1 s) is what offline means: not stale.
    page.wait_for_timeout(3_000)
    expect(connection).to_have_attribute("data-state", "offline")

    stream.send({"type": "host", "host": host, "online": True})
    expect(offline).to_be_hidden()
    expect(connection).to_have_attribute("data-state", "live")

    stream.send({"type": "host", "host": host, "online": False})
    expect(offline).to_be_visible()
    stream.holding = False  # the next snapshot is newer than any the page has
    expect(offline).to_be_hidden()
    expect(connection).to_have_attribute("data-state", "live")


def test_another_hosts_offline_frame_is_ignored(service, host, page):
    stream = HeldStream()
    page.route_web_socket(SOCKET_URL, stream)
    open_host_page(page, service, host)
    expect_live(page)
    stream.holding = True
    stream.send({"type": "host", "host": f"not-{host}", "online": False})
    page.wait_for_timeout(500)
    expect(page.locator("#host-offline")).to_be_hidden()


def test_the_switcher_offers_each_host_and_opens_the_chosen_ones_page(
    service, host, page
):
    hosts = [
        {"name": host, "online": True},
        {"name": "web-2", "online": False},
        {"name": "<b>bold</b>", "online": True},  # no host can be named so: left out
    ]
    page.route(
        HOSTS_URL,
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(hosts)
        ),
    )
    open_host_page(page, service, host)
    expect_live(page)
    switcher = page.get_by_label("Host", exact=True)
    options = switcher.locator("option")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_have_text(host)
    expect(switcher).to_have_value(host)
    expect(options.nth(1)).to_have_text("web-2 (offline)")
    expect(page.locator("#hosts b")).to_have_count(0)
    expect(page.get_by_role("link", name="All hosts")).to_have_attribute("href", "/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-hosts.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=ARTIFACTS / "dashboard-hosts-phone.png")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth"
        " - document.documentElement.clientWidth"
    )
    assert overflow == 0, "the header scrolls sideways at phone width"
    switcher.select_option("web-2")
    expect(page).to_have_url(f"{base_url(service)}/hosts/web-2/")


def test_a_single_host_gets_no_switcher(service, host, page):
    page.route(
        HOSTS_URL,
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps([{"name": host, "online": True}]),
        ),
    )
    with page.expect_response(HOSTS_URL):
        open_host_page(page, service, host)
    expect_live(page)
    expect(page.locator("#switcher")).to_be_hidden()
    expect(page.get_by_role("link", name="All hosts")).to_be_visible()


def test_the_switcher_lists_the_hosts_the_server_lists(service, host, page):
    """Waits for the server side of issue 13 (skipped until then)."""
    requires_hosts_api(page, service)
    with page.expect_response(HOSTS_URL) as listed:
        open_host_page(page, service, host)
    expect_live(page)
    names = [entry["name"] for entry in listed.value.json()]
    assert host in names
    if len(names) > 1:
        expect(page.locator("#host-switcher option")).to_have_count(len(names))
        expect(page.locator("#host-switcher")).to_have_value(host)
    else:
        expect(page.locator("#switcher")).to_be_hidden()
