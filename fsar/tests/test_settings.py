"""Secure by default: DEBUG is off unless set, production refuses to start on
missing or published secrets, and `check --deploy` is clean with the
production environment documented in docs/deployment.md."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a shell on a fresh machine has: nothing of the test run's own environment (DEBUG=1 in particular).
BASE_ENV = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}


def documented_production_env() -> dict[str, str]:
    """The ```env block of docs/deployment.md, with its <placeholders> filled with fresh random values."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"```env\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md has no ```env block"
    env = {}
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if value.startswith("<"):
            value = secrets.token_hex(32)
        env[name] = value
    return env


def run_django(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        env={**BASE_ENV, "DJANGO_SETTINGS_MODULE": "fsar.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**BASE_ENV, "DJANGO_SETTINGS_MODULE": "fsar.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def local(env: dict[str, str], tmp_path) -> dict[str, str]:
    """The documented env, with the database and Redis pointed at nothing real
    (check --deploy connects to neither)."""
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", "REDIS_URL": "redis://127.0.0.1:1/0"}


def test_check_deploy_prints_no_warnings_with_the_documented_production_env(tmp_path):
    env = local(documented_production_env(), tmp_path)
    assert env["DEBUG"] == "0"
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_does_warn_when_a_documented_setting_is_left_out(tmp_path):
    """The check above can fail: without HSTS it warns (so the documented env is what makes it clean)."""
    env = local(documented_production_env(), tmp_path)
    del env["SECURE_HSTS_SECONDS"]
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


def test_the_documented_env_turns_on_https_redirect_secure_cookies_hsts_and_the_proxy_header(tmp_path):
    code = (
        "from django.conf import settings as s\n"
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = run_django(code, local(documented_production_env(), tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 5) == [
        "False", "True", "True", "True", "31536000", "('HTTP_X_FORWARDED_PROTO', 'https')\n"
    ]  # fmt: skip


def test_debug_is_off_unless_set(tmp_path):
    env = local(documented_production_env(), tmp_path)
    del env["DEBUG"]
    result = run_django("from django.conf import settings; print(settings.DEBUG)", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("debug", ["0", None], ids=["DEBUG=0", "DEBUG-unset"])
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECRET_KEY", None, "SECRET_KEY must be set when DEBUG is off."),
        ("SECRET_KEY", "fsar-insecure-development-key-do-not-use-in-production", "SECRET_KEY is the development"),
        ("AUDIT_CHAIN_KEY", None, "AUDIT_CHAIN_KEY must be set when DEBUG is off."),
        (
            "AUDIT_CHAIN_KEY",
            "fsar-insecure-development-audit-chain-key-do-not-use-in-production",
            "AUDIT_CHAIN_KEY is the development default",
        ),
        ("AUDIT_CHAIN_KEY", "short", "AUDIT_CHAIN_KEY must be at least 32 characters"),
    ],
)
def test_without_debug_it_refuses_to_start_on_a_missing_or_published_secret(tmp_path, debug, name, value, message):
    env = local(documented_production_env(), tmp_path)
    env.pop("DEBUG")
    if debug is not None:
        env["DEBUG"] = debug
    env.pop(name)
    if value is not None:
        env[name] = value
    result = run_django("print('started')", env)
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert message in result.stderr


def test_the_migrations_check_runs_without_secrets_and_other_commands_still_refuse(tmp_path):
    """`manage.py makemigrations --check` compares models with migrations and never
    signs anything: it runs on a machine with no secrets and DEBUG off (a hook, a
    CI step). `check` (and every server) still refuses to start without them."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}"}
    result = run_manage(["makemigrations", "--check", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
    refused = run_manage(["check"], env)
    assert refused.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in refused.stderr


def test_with_debug_on_it_starts_on_the_development_keys(tmp_path):
    result = run_django(
        "from django.conf import settings as s; print(s.SECRET_KEY == 'fsar-insecure-development-key-do-not-use-"
        "in-production', s.AUDIT_CHAIN_KEY == s.AUDIT_CHAIN_DEV_KEY, s.SECURE_SSL_REDIRECT)",
        {"DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]


def test_under_xdist_each_worker_has_its_redis_database_and_what_it_starts_keeps_the_url_it_is_given(tmp_path):
    """fsar/settings_for_tests.py under `pytest -n 2`: worker gw1 moves the run's REDIS_URL
    (db 9) to db 10, once; an rqworker it starts with its environment stays on db 10, not
    11; a gunicorn a fault test starts on its private redis-server stays on that server
    (when it was moved back to the run's Redis, killing the private one killed nothing)."""
    code = "import json, os; import fsar.settings_for_tests as s; print(json.dumps([s.REDIS_URL, dict(os.environ)]))"

    def load_test_settings(env: dict[str, str]) -> tuple[str, dict[str, str]]:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        url, environ = json.loads(result.stdout)
        return url, environ

    run = {**BASE_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", "PYTEST_XDIST_WORKER": "gw1"}
    url, worker = load_test_settings({**run, "REDIS_URL": "redis://127.0.0.1:6379/9"})
    assert url == worker["REDIS_URL"] == "redis://127.0.0.1:6379/10"
    assert load_test_settings(worker)[0] == "redis://127.0.0.1:6379/10"
    assert load_test_settings({**worker, "REDIS_URL": "redis://127.0.0.1:6391/0"})[0] == "redis://127.0.0.1:6391/0"
    url, first = load_test_settings({**run, "PYTEST_XDIST_WORKER": "gw0", "REDIS_URL": "redis://127.0.0.1:6379/9"})
    assert url == "redis://127.0.0.1:6379/9"
    assert load_test_settings({**first, "REDIS_URL": "redis://127.0.0.1:6391/0"})[0] == "redis://127.0.0.1:6391/0"
