"""Operations (issue 14, item 7): settings from the environment and listed in the
README, declared dependencies, body limits only the upload views lift."""

import ast
import json
import re

import pytest
from django.urls import reverse

from fsar.tests.test_settings import BASE_ENV, ROOT, run_django  # noqa: F401

APPS = ["assurance", "audit", "billing", "core", "deployments", "fsar", "indicators", "reviews", "tasks"]


def app_sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            yield path


def settings_env_names() -> set[str]:
    """Every environment variable fsar/settings.py reads."""
    text = (ROOT / "fsar" / "settings.py").read_text()
    return set(
        re.findall(r'(?:os\.environ\.get|env_int|env_bool|env_list|env_secret|env_float)\(\s*"([A-Z0-9_]+)"', text)
    )


def test_no_setting_is_read_with_a_default_in_code():
    """Defaults live in fsar/settings.py, read from the environment, not in getattr calls."""
    found = []
    for path in app_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "settings"
                and isinstance(node.args[1], ast.Constant)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.args[1].value}")
    assert not found, found


def test_every_environment_variable_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    missing = sorted(name for name in settings_env_names() if f"`{name}`" not in table)
    assert not missing, missing


def test_settings_that_had_defaults_in_code_come_from_the_environment(tmp_path):
    code = (
        "from django.conf import settings as s\n"
        "print(s.METRICS_EXACT_MAX_TASKS, s.REVIEWS_CLAIM_MINUTES, s.REVIEWS_POLICY_CHANGE_SLA_HOURS, s.DEMO_KEY_FILE)"
    )
    env = {
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "METRICS_EXACT_MAX_TASKS": "123",
        "REVIEWS_CLAIM_MINUTES": "15",
        "REVIEWS_POLICY_CHANGE_SLA_HOURS": "24",
        "DEMO_KEY_FILE": "/tmp/demo-key",
    }
    result = run_django(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["123", "15", "24", "/tmp/demo-key"]


def _requirement_names() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[=<>\[ ]", line)[0].lower().replace("_", "-"))
    return names


def test_every_library_the_app_imports_at_run_time_is_declared():
    # Import name → distribution, where they differ; the standard library and our apps are skipped.
    distribution = {"django": "django", "dj_database_url": "dj-database-url", "django_otp": "django-otp",
                    "django_rq": "django-rq", "simple_history": "django-simple-history", "ninja": "django-ninja",
                    "markdown_it": "markdown-it-py", "csp": "django-csp", "psycopg": "psycopg",
                    "psycopg_pool": "psycopg-pool", "pythonjsonlogger": "python-json-logger"}  # fmt: skip
    import sys

    local = set(APPS) | {"bench", "clients"}
    declared = _requirement_names()
    missing = set()
    for path in app_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                if distribution.get(top, top).lower().replace("_", "-") not in declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, sorted(missing)


# Body limits: 16 MiB only for the upload views, Django's default (2.5 MiB) elsewhere.

THREE_MIB = 3 * 1024 * 1024


@pytest.mark.django_db
def test_a_form_elsewhere_keeps_djangos_default_body_limit(client, operator):
    client.force_login(operator)
    response = client.post(reverse("billing:runs"), {"period": "2026-10", "padding": "x" * THREE_MIB})
    assert response.status_code == 400


@pytest.mark.django_db
def test_the_bulk_backfill_takes_a_body_above_djangos_default(agent):
    row = {
        "external_id": "big-1",
        "task_type": "self_improvement",
        "status": "succeeded",
        "started_at": "2026-10-01T09:00:00Z",
        "finished_at": "2026-10-01T09:00:02Z",
    }
    body = json.dumps({"tasks": [row]}) + " " * THREE_MIB  # whitespace is valid JSON
    response = agent.post("/api/v1/tasks/bulk", body, content_type="application/json")
    assert response.status_code in (200, 201), response.content[:300]


@pytest.mark.django_db
def test_the_bulk_backfill_still_refuses_a_body_over_its_limit(agent, settings):
    settings.API_BULK_MAX_BODY_BYTES = 2 * 1024 * 1024
    response = agent.post("/api/v1/tasks/bulk", " " * THREE_MIB, content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.django_db
def test_the_report_upload_page_takes_files_above_djangos_default_and_refuses_past_its_limit(
    client, operator, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(operator)
    files = [SimpleUploadedFile(f"r{n}.md", b"x" * (900 * 1024), content_type="text/markdown") for n in range(4)]
    response = client.post(reverse("reviews:upload"), {"files": files})
    assert response.status_code == 200
    assert len(response.context["outcomes"]) == 4  # each read and judged (these are not valid reports)
    settings.API_BULK_MAX_BODY_BYTES = 1024 * 1024
    files = [SimpleUploadedFile(f"s{n}.md", b"x" * (900 * 1024), content_type="text/markdown") for n in range(2)]
    response = client.post(reverse("reviews:upload"), {"files": files})
    assert response.status_code == 413


# Logging: time, level, logger and request id; LOG_LEVEL for Django too; JSON behind LOG_FORMAT.


def test_a_request_gets_an_id_echoed_in_the_response(client):
    response = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert client.get("/healthz")["X-Request-ID"] != response["X-Request-ID"]


@pytest.mark.parametrize(
    "incoming,kept",
    [("abc-123", True), ("req_7f3a.1:2@lb", True), ("bad id", False), ("x" * 200, False), ("a\nb", False), ("", False)],
)
def test_a_well_formed_incoming_request_id_is_kept_and_anything_else_replaced(client, incoming, kept):
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"]
    assert (echoed == incoming) is kept
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", echoed)


def test_log_lines_made_while_serving_a_request_carry_its_id(rf):
    import io
    import logging
    import logging.config

    from django.conf import settings

    from fsar.logs import RequestIdMiddleware

    stream = io.StringIO()
    config = settings.LOGGING["handlers"]["console"]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]))
    for name in config["filters"]:
        handler.addFilter(logging.config.DictConfigurator(settings.LOGGING).configure_filter(
            settings.LOGGING["filters"][name]))  # fmt: skip
    logger = logging.getLogger("fsar.tests.request_id")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:

        def view(request):
            logger.info("inside")
            from django.http import HttpResponse

            return HttpResponse("ok")

        RequestIdMiddleware(view)(rf.get("/", HTTP_X_REQUEST_ID="trace-42"))
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO fsar\.tests\.request_id \[trace-42\] inside", inside
    )
    assert outside.endswith("INFO fsar.tests.request_id [-] outside")


LOG_CODE = (
    "import logging\n"
    "print(logging.getLogger('django').getEffectiveLevel(), logging.getLogger('billing').getEffectiveLevel())\n"
    "logging.getLogger('django.request').warning('one %s', 'line')\n"
)


def test_djangos_loggers_follow_log_level(tmp_path):
    env = {"DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", "LOG_LEVEL": "ERROR"}
    result = run_django(LOG_CODE, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["40", "40"]
    assert "one line" not in result.stderr  # a warning, below ERROR


def test_log_format_json_writes_one_object_per_line(tmp_path):
    env = {"DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", "LOG_FORMAT": "json"}
    result = run_django(LOG_CODE, env)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "one line" in line]
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "request_id", "message"}
    assert (entry["level"], entry["logger"], entry["request_id"], entry["message"]) == (
        "WARNING",
        "django.request",
        "-",
        "one line",
    )
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize("name,value", [("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "xml")])
def test_a_bad_log_setting_refuses_to_start_naming_it(tmp_path, name, value):
    env = {"DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", name: value}
    result = run_django("print('started')", env)
    assert result.returncode != 0 and name in result.stderr


# gunicorn: a shipped config file.


def gunicorn_config(monkeypatch, **env) -> dict:
    import runpy

    for name in ("GUNICORN_ROLE", "GUNICORN_TIMEOUT", "GUNICORN_WORKERS", "STRIPE_TIMEOUT_SECONDS",
                 "STRIPE_MAX_NETWORK_RETRIES"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_the_gunicorn_config_holds_only_settings_gunicorn_knows(monkeypatch):
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    for role in ("web", "longpoll"):
        config = gunicorn_config(monkeypatch, GUNICORN_ROLE=role)
        ours = {k for k, v in config.items() if k.islower() and not k.startswith("_") and not callable(v)}
        assert ours - {"multiprocessing", "os"} <= known
        assert {"workers", "timeout", "graceful_timeout", "accesslog", "access_log_format"} <= ours
    assert gunicorn_config(monkeypatch, GUNICORN_ROLE="longpoll")["worker_class"] == "gthread"


def test_gunicorn_replaces_workers_by_forking_the_preloaded_master(tmp_path):
    """The shipped config: the project is imported (and warmed, fsar/wsgi.py) once, in the
    master; workers replaced after `max_requests` are forks of it, so the warm-up's log line
    appears once, from the master, however many workers are replaced, and every request
    during the replacements is answered."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **BASE_ENV, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "fsar.settings", "LOG_LEVEL": "INFO",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2", "GUNICORN_MAX_REQUESTS": "10", "PYTHONWARNINGS": "ignore",
    }  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert master.poll() is None, log.read_text()[-3000:]
            try:
                first = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        workers_before = set(Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split())
        statuses = [first.status_code] + [
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code for _ in range(59)
        ]
        workers_after = set(Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split())
    finally:
        master.terminate()
        master.wait(timeout=30)
    assert statuses == [200] * 60
    assert workers_before - workers_after, "no worker was replaced after max_requests"
    warmed = [line for line in log.read_text().splitlines() if "imported every view, compiled" in line]
    assert len(warmed) == 1, warmed
    assert f"(process {master.pid})" in warmed[0]


@pytest.mark.parametrize("timeout,retries", [(20, 2), (30, 3), (5, 0)])
def test_gunicorn_outlasts_the_slowest_stripe_path(monkeypatch, settings, timeout, retries):
    """The billing portal: three Stripe calls, each `timeout` per attempt and `retries`
    retries after stripe-python's back-off, all within one request."""
    from stripe._http_client import HTTPClient

    config = gunicorn_config(monkeypatch, STRIPE_TIMEOUT_SECONDS=str(timeout), STRIPE_MAX_NETWORK_RETRIES=str(retries))
    worst = 3 * ((retries + 1) * timeout + retries * HTTPClient.MAX_DELAY)
    assert config["timeout"] > worst
    assert config["graceful_timeout"] >= config["timeout"]
    assert "x-request-id" in config["access_log_format"]
