"""A browser-less HTTP client for real processes: cookies, CSRF, forms, JSON, and
the response as it came (redirects are not followed)."""

import html
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message

TIMEOUT = 30.0


@dataclass
class Answer:
    """One HTTP response: status, headers and body text."""

    status: int
    headers: Message
    text: str

    def json(self):
        return json.loads(self.text)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Session:
    """One client of the service on a local port, keeping its cookies."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.cookies = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.cookies), NoRedirects()]
        self.opener = urllib.request.build_opener(*handlers)

    def request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                body = response.read().decode()
                return Answer(response.status, response.headers, body)
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, error.read().decode())

    def get(self, path: str, **headers: str) -> Answer:
        return self.request(path, headers=headers)

    def post_json(self, path: str, body: object, **headers: str) -> Answer:
        headers = {"Content-Type": "application/json", **headers}
        return self.request(path, json.dumps(body).encode(), headers)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def post_form(self, path: str, fields: dict[str, str | list[str]]) -> Answer:
        """POST a form as a browser would after loading its page: with the CSRF
        token from the cookie, and the page as Referer (a list: a field's values,
        as a multiple choice sends them)."""
        fields = {"csrfmiddlewaretoken": self.cookie("csrftoken") or "", **fields}
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": self.base + path,
        }
        body = urllib.parse.urlencode(fields, doseq=True).encode()
        return self.request(path, body, headers)

    def admin_login(self, username: str, password: str) -> Answer:
        """Load the admin's login page, then submit it."""
        page = self.get("/admin/login/")
        assert page.status == 200, page.status
        return self.post_form(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "next": "/admin/"},
        )


def form_errors(page: Answer) -> list[str]:
    """The messages a Django admin form shows above its fields."""
    found = re.findall(r'<p class="errornote">\s*(.*?)\s*</p>', page.text, re.DOTALL)
    return [html.unescape(message) for message in found]
