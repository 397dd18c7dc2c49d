"""The pages: the overview at `/`, and `/hosts/NAME/` for host-like names only."""

import pytest


@pytest.mark.parametrize("name", ["web-1", "db.example.org", "0", "a" * 63])
def test_a_host_like_name_gets_the_dashboard_page(client, name):
    response = client.get(f"/hosts/{name}/")
    assert response.status_code == 200
    assert response.templates[0].name == "metrics/dashboard.html"


def test_the_page_does_not_name_the_host_before_a_login(client):
    # The script reads the name from the URL after a login; the page itself keeps
    # no trace of it, whether or not such a host exists.
    response = client.get("/hosts/secret-box/")
    assert b"secret-box" not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/hosts/Web-1/",
        "/hosts/-web/",
        "/hosts/.web/",
        "/hosts/web_1/",
        "/hosts/web%201/",
        f"/hosts/{'a' * 64}/",
        "/hosts//",
        "/hosts/web/extra/",
    ],
)
def test_any_other_name_is_not_found(client, path):
    assert client.get(path).status_code == 404


def test_the_root_is_the_overview(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.templates[0].name == "metrics/overview.html"
