"""The container set-up matches what the project really provides, and nginx proxies it.

Docker does not run here, so docker-compose.yml, the Dockerfile and deploy/nginx.conf
are checked against the code on disk, and deploy/nginx.conf is run for real in front
of a real daphne process.
"""

import asyncio
import http.cookiejar
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import django
import pytest
import yaml
from django.contrib.auth.hashers import make_password

from agent.cli import TOKEN_VARIABLE, parse_options
from core.bounds import DAPHNE_MAX_MESSAGE_BYTES
from tests.support import processes
from tests.support.clients import open_socket, receive_json

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = Path("/usr/sbin/nginx")

APP_SERVICES = ("migrate", "web", "worker")
# Read only by `ensure_admin`: the development login belongs to migrate alone.
SETUP_ONLY = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"}
LONG_RUNNING = ("redis", "postgres", "web", "worker", "nginx")
UPSTREAM = "web:8000"
# The README's web command; in a container it must listen on every interface.
ASGI_APPLICATION = "monitor.asgi:application"
NGINX_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def load_compose() -> dict:
    """Parse docker-compose.yml, anchors and merge keys resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def documented_variables() -> list[str]:
    """Names in the README's configuration table (rows starting with "| `")."""
    readme = (ROOT / "README.md").read_text()
    section = readme.partition("\n## Configuration")[2].partition("\n## ")[0]
    names = re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", section, flags=re.MULTILINE)
    assert names, "README.md has no configuration table rows starting with '| `'"
    return names


def management_commands() -> set[str]:
    """Names of the commands on disk in the project's apps and in Django's core."""
    core = Path(django.__file__).parent / "core" / "management" / "commands"
    files = [*ROOT.glob("*/management/commands/*.py"), *core.glob("*.py")]
    return {path.stem for path in files if not path.stem.startswith("_")}


def command_line(service: dict) -> list[str]:
    """A service's command as a list of words, whether written as a list or a string."""
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def shell_script(service: dict) -> str:
    """The whole command of a service as one line of shell."""
    return " ".join(command_line(service))


def nginx_seconds(value: str) -> float:
    """Convert an nginx time ("90", "75s", "1h", "1m30s") to seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)?", value)
    assert parts, f"not an nginx time: {value!r}"
    assert "".join(n + u for n, u in parts) == value, f"not an nginx time: {value!r}"
    return sum(int(number) * NGINX_TIME_UNITS[unit or "s"] for number, unit in parts)


def nginx_location(config: str, prefix: str) -> str:
    """The body of `location <prefix> { ... }` (locations here contain no blocks)."""
    match = re.search(
        rf"location\s+{re.escape(prefix)}\s*\{{(?P<body>[^{{}}]*)\}}", config
    )
    assert match, f"deploy/nginx.conf has no `location {prefix}` block"
    return match.group("body")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def nginx_config() -> str:
    return NGINX_CONF.read_text()


# docker-compose.yml


def test_compose_defines_every_service(services):
    expected = {"redis", "postgres", "migrate", "web", "worker", "nginx", "agent"}
    assert expected <= set(services)


def test_web_is_scalable_without_ports_or_container_name(services):
    web = services["web"]
    assert "ports" not in web, "published ports would clash with --scale web=3"
    assert "container_name" not in web, "a fixed name forbids --scale web=3"


def test_app_services_share_one_image_built_from_the_dockerfile(services):
    images = {services[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1, f"migrate, web and worker use different images: {images}"
    for name in APP_SERVICES:
        assert services[name].get("build") in (".", {"context": "."}), name


def test_long_running_services_restart_unless_stopped(services):
    for name in LONG_RUNNING:
        assert services[name].get("restart") == "unless-stopped", name


def test_migrate_is_one_shot(services):
    assert services["migrate"].get("restart", "no") == "no"


def test_web_serves_the_projects_asgi_application_with_daphne(services):
    words = command_line(services["web"])
    assert words[:3] == ["python", "-m", "runner.webserver"]
    assert (ROOT / "runner" / "webserver.py").is_file()
    assert words[-1] == ASGI_APPLICATION
    joined = " ".join(words)
    assert "-b 0.0.0.0" in joined
    assert "-p 8000" in joined
    assert f"--websocket-max-message-size {DAPHNE_MAX_MESSAGE_BYTES}" in joined
    module, _, attribute = words[-1].partition(":")
    path = ROOT / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"web runs {words[-1]} but {path} does not exist"
    assert re.search(rf"^{attribute}\s*=", path.read_text(), re.MULTILINE), (
        f"{path} defines no {attribute}"
    )


def test_worker_runs_publish_metrics(services):
    assert command_line(services["worker"]) == [
        "python",
        "manage.py",
        "publish_metrics",
    ]


def test_migrate_migrates_then_ensures_the_admin(services):
    script = shell_script(services["migrate"])
    migrate = script.find("python manage.py migrate --noinput")
    ensure = script.find("python manage.py ensure_admin")
    assert 0 <= migrate < ensure, script
    assert "&&" in script[migrate:ensure], "ensure_admin must run only if migrate did"


@pytest.mark.parametrize("service", ["worker", "migrate"])
def test_management_commands_run_by_compose_exist(services, service):
    available = management_commands()
    named = re.findall(r"manage\.py\s+(\w+)", shell_script(services[service]))
    assert named, f"{service} runs no manage.py command"
    missing = [name for name in named if name not in available]
    assert not missing, (
        f"{service} runs manage.py {', '.join(missing)}, but no app has "
        f"management/commands/<name>.py for it (found: {sorted(available)})"
    )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_documented_variable_is_set(services, service):
    environment = services[service]["environment"]
    assert isinstance(environment, dict), "environment should be a mapping"
    wanted = [name for name in documented_variables() if name not in SETUP_ONLY]
    missing = [name for name in wanted if name not in environment]
    assert not missing, f"{service} does not set {missing}"


def test_environment_is_written_once_in_an_anchor(compose, services):
    text = COMPOSE_FILE.read_text()
    assert "x-service-env: &service-env" in text
    shared = compose["x-service-env"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert {key: environment[key] for key in shared} == shared, name
    assert services["web"]["environment"] == shared
    assert services["worker"]["environment"] == shared


def test_environment_points_at_the_compose_services(compose):
    env = compose["x-service-env"]
    assert env["DJANGO_DEBUG"] == "0"
    assert env["DATABASE_URL"] == "postgres://monitor:monitor@postgres:5432/monitor"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["METRICS_INTERVAL"] == "5"
    assert env["METRICS_REDIS_PREFIX"] == "monitor"
    assert env["METRICS_LOG_LEVEL"] == "INFO"
    assert env["JWT_ACCESS_TOKEN_LIFETIME"] == "300"
    hosts = env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert {"localhost", "127.0.0.1", "web"} <= set(hosts)
    assert all(isinstance(value, str) for value in env.values()), (
        "quote every value: YAML would turn 0 or 5 into numbers"
    )


def test_settings_accept_the_compose_environment(compose):
    """`manage.py check` starts the project with exactly the compose variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "METRICS_", "JWT_"))
    }
    env.update(compose["x-service-env"])
    env["DJANGO_SETTINGS_MODULE"] = "monitor.settings"
    result = processes.run_to_end([sys.executable, "manage.py", "check"], env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_login_is_seeded_only_by_migrate(services):
    migrate = services["migrate"]["environment"]
    assert migrate["DJANGO_SUPERUSER_USERNAME"] == "admin"
    assert migrate["DJANGO_SUPERUSER_PASSWORD"] == "admin123"
    for name in ("web", "worker"):
        seeded = SETUP_ONLY & set(services[name]["environment"])
        assert not seeded, f"{name} should not see {sorted(seeded)}"
    assert "local development only" in COMPOSE_FILE.read_text()


def test_app_services_wait_for_their_dependencies(services):
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}
    }
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


def test_redis_and_postgres_have_healthchecks(services):
    assert services["redis"]["image"].startswith("redis:7")
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_postgres_keeps_its_data_in_a_named_volume(compose, services):
    volumes = [entry.split(":")[0] for entry in services["postgres"]["volumes"]]
    assert any(volume in compose.get("volumes", {}) for volume in volumes), volumes


def test_web_healthcheck_calls_healthz_without_curl(services):
    test = services["web"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "python"
    script = " ".join(test[2:])
    assert "urllib" in script
    assert "127.0.0.1:8000/healthz" in script


def test_nginx_mounts_the_config_and_publishes_a_port(services):
    nginx = services["nginx"]
    mounts = [entry.split(":") for entry in nginx["volumes"]]
    config = [mount for mount in mounts if mount[1] == "/etc/nginx/nginx.conf"]
    assert config, f"nginx does not mount /etc/nginx/nginx.conf: {nginx['volumes']}"
    assert (ROOT / config[0][0]).resolve() == NGINX_CONF
    assert nginx["ports"], "nginx publishes no port"
    assert str(nginx["ports"][0]).endswith(":80")
    assert nginx["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_agent_service_is_off_unless_asked_for(services):
    # `docker compose up` must work without a host token.
    assert services["agent"]["profiles"] == ["agent"]


def test_agent_service_runs_the_agent_through_nginx(services):
    words = command_line(services["agent"])
    assert words[:3] == ["python", "-m", "agent"]
    assert (ROOT / "agent" / "__main__.py").is_file()
    options = parse_options(words[3:], {TOKEN_VARIABLE: "a-token"})
    assert urllib.parse.urlsplit(options.url).hostname == "nginx"
    assert "nginx" in services


def test_agent_token_comes_from_the_environment_and_may_be_unset(services):
    assert "--token" not in command_line(services["agent"])
    assert "--token-file" not in command_line(services["agent"])
    token = services["agent"]["environment"][TOKEN_VARIABLE]
    # A default (":-"), not a required variable (":?"), which would stop every
    # `docker compose` command of a user without a token.
    assert token == "${MONITOR_AGENT_TOKEN:-}"


def test_agent_service_uses_the_app_image_which_has_the_agents_dependencies(
    services,
):
    assert services["agent"]["image"] == services["web"]["image"]
    pyproject = tomllib.loads((ROOT / "agent" / "pyproject.toml").read_text())
    installed = (ROOT / "requirements.txt").read_text().splitlines()
    for dependency in pyproject["project"]["dependencies"]:
        assert dependency in installed, f"the image does not install {dependency}"


# Dockerfile


def test_dockerfile_installs_requirements_before_copying_the_code(services):
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    base = next(line for line in lines if line.startswith("FROM "))
    assert re.match(r"FROM python:3\.11\b", base), base

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"Dockerfile has no line matching {pattern!r}"
        return found[0]

    copy_requirements = index(r"^COPY requirements\.txt ")
    install = index(r"^RUN pip install .*-r requirements\.txt")
    copy_code = index(r"^COPY \. ")
    assert copy_requirements < install < copy_code
    assert index(r"PIP_NO_CACHE_DIR=1") < install
    assert not re.search(r"^USER (root|0)$", lines[index(r"^USER ")])
    assert index(r"^EXPOSE 8000$")
    cmd = json.loads(lines[index(r"^CMD ")].removeprefix("CMD "))
    assert cmd == command_line(services["web"])


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for entry in (".venv/", ".git/", "**/__pycache__/", "*.sqlite3", ".pytest_cache/"):
        assert entry in ignored, entry
    assert ".ruff_cache/" in ignored


# deploy/nginx.conf


def test_nginx_config_upgrades_websockets(nginx_config):
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade\s*\{", nginx_config)
    websocket = nginx_location(nginx_config, "/api/ws/")
    assert re.search(r"proxy_http_version\s+1\.1;", websocket)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", websocket)
    assert re.search(
        r"proxy_set_header\s+Connection\s+\$connection_upgrade;", websocket
    )
    assert re.search(r"proxy_buffering\s+off;", websocket)
    timeout = re.search(r"proxy_read_timeout\s+(\S+);", websocket)
    assert timeout, "the socket location keeps nginx's 60 s read timeout"
    assert nginx_seconds(timeout.group(1)) >= 60


@pytest.mark.parametrize("prefix", ["/api/ws/", "/"])
def test_nginx_config_forwards_client_headers(nginx_config, prefix):
    # proxy_set_header in a location replaces the server's: check what applies there.
    location = nginx_location(nginx_config, prefix)
    applied = location if "proxy_set_header" in location else nginx_config
    for header, value in [
        # $http_host keeps the port, which Django's CSRF origin check compares.
        ("Host", "$http_host"),
        # Not appended to the client's own (spoofable) X-Forwarded-For.
        ("X-Forwarded-For", "$remote_addr"),
        ("X-Forwarded-Proto", "$scheme"),
    ]:
        pattern = rf"proxy_set_header\s+{header}\s+{re.escape(value)};"
        assert re.search(pattern, applied), f"{prefix}: no {header} {value}"
    assert "proxy_pass http://" in location


def test_nginx_config_names_the_web_service(nginx_config):
    assert UPSTREAM in nginx_config
    assert re.search(r"^\s*listen\s+80;", nginx_config, re.MULTILINE)


# nginx for real, in front of a real daphne


@pytest.fixture
def nginx_binary() -> Path:
    if not NGINX.exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{NGINX} is missing: .ci/run must install nginx (apt-get install "
                "-y nginx) so that deploy/nginx.conf is tested",
                pytrace=False,
            )
        pytest.skip(f"{NGINX} is not installed")
    return NGINX


def local_nginx_config(tmp_path: Path, daphne_port: int, nginx_port: int) -> Path:
    """deploy/nginx.conf pointed at a local daphne and listening on a free port."""
    config = NGINX_CONF.read_text()
    assert config.count(UPSTREAM) == 1, f"expected one {UPSTREAM} in nginx.conf"
    config = config.replace(UPSTREAM, f"127.0.0.1:{daphne_port}")
    config, listens = re.subn(
        r"^(\s*)listen\s+80;",
        rf"\g<1>listen 127.0.0.1:{nginx_port};",
        config,
        flags=re.MULTILINE,
    )
    assert listens == 1, "expected one `listen 80;` in nginx.conf"
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    return path


@pytest.fixture
def nginx_port(nginx_binary, transactional_db, clean_redis, tmp_path):
    """nginx with deploy/nginx.conf in front of one real daphne; yields its port."""
    with processes.daphne(tmp_path) as (_, daphne_port):
        port = processes.free_port()
        config = local_nginx_config(tmp_path, daphne_port, port)
        main = f"daemon off; pid {tmp_path / 'nginx.pid'};"
        args = [str(nginx_binary), "-p", f"{tmp_path}/", "-c", str(config)]
        check = subprocess.run(
            [*args, "-t", "-g", main],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, f"nginx -t failed:\n{check.stderr}"
        log = tmp_path / "nginx.log"
        with processes.running([*args, "-g", main], dict(os.environ), log) as nginx:
            try:
                processes.wait_for_port(port, nginx, processes.START_TIMEOUT)
            except (RuntimeError, TimeoutError) as error:
                pytest.fail(f"nginx did not start: {error}\n{log.read_text()}")
            yield port


def get(url: str) -> tuple[int, dict, bytes]:
    """GET a URL; return status, headers and body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


@pytest.mark.django_db(transaction=True)
async def test_nginx_proxies_websocket_and_http(nginx_port, access_token):
    status, headers, body = await asyncio.to_thread(
        get, f"http://127.0.0.1:{nginx_port}/api/auth/login"
    )
    assert status == 405, body
    assert headers["Server"] == "nginx", "the answer did not come through nginx"
    assert headers["Content-Type"] == "application/json"
    assert "detail" in json.loads(body)

    ws = await open_socket(
        nginx_port, access_token, origin=f"http://localhost:{nginx_port}"
    )
    try:
        assert ws.response.headers["Server"] == "nginx"
        await ws.send(json.dumps({"type": "ping"}))
        reply = await receive_json(ws)
        while reply.get("type") == "metrics":  # a snapshot may arrive first
            reply = await receive_json(ws)
        assert reply["type"] == "pong"
    finally:
        await ws.close()


def admin_login_through(port: int, username: str, password: str) -> tuple[int, str]:
    """Log in to the admin as a browser would; return the POST's status and target."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), NoRedirect()
    )
    base = f"http://127.0.0.1:{port}"
    with opener.open(f"{base}/admin/login/", timeout=15) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/?next=/admin/",
        data=form,
        headers={"Origin": base, "Referer": f"{base}/admin/login/"},
    )
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Location", "")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.django_db(transaction=True)
async def test_admin_login_works_through_nginx(nginx_port, django_user_model):
    await django_user_model.objects.acreate(
        username="boss",
        password=make_password("s3cret-enough", hasher="pbkdf2_sha256"),
        is_staff=True,
        is_superuser=True,
    )
    status, location = await asyncio.to_thread(
        admin_login_through, nginx_port, "boss", "s3cret-enough"
    )
    assert (status, location) == (302, "/admin/")
