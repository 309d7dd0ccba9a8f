"""Helpers for the tests, in one importable module: `from fsar.testing import log_in`.

Fixtures stay in the conftest.py files; what a test calls (log in through the form,
make a user in a role, write a report, register a model version, reach the test
database from another process) lives here. Nothing in the product imports it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The example reports the tests upload (reviews/tests/fixtures).
REPORT_FIXTURES = ROOT / "reviews" / "tests" / "fixtures"

# Debian's Chromium, driven by Playwright in the browser tests (and scripts/screenshots.py).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The instant the `frozen_clock` fixture stops the clock at: mid-month, mid-day, far from
# a midnight or a month's end that a test reading the date twice could straddle.
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
# Every user the tests make has this password.
PASSWORD = "correct-horse-battery"


def log_in(page, live_server, username: str) -> None:
    """Log `username` in through the login form in a browser test (any earlier session is dropped)."""
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def make_user(django_user_model, username: str, role: str | None = None, **extra):
    """A user with PASSWORD, in the role group of that name (migration fsar.0001 makes the groups)."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def report_md(
    report_id: str,
    *,
    severity: int = 6,
    block: bool = False,
    proposal: str = "implement_idea: add a cache",
    supersedes: str | None = None,
) -> str:
    """A markdown proposal report in the FSAR format (docs/fsar-report-format.md)."""
    lines = [
        "# FSAR Proposal Report",
        f"- id: {report_id}",
        "- timestamp: 2026-02-01T10:00:00Z",
        f"- severity: {severity}",
        f"- block_execution: {'true' if block else 'false'}",
    ]
    if supersedes:
        lines.append(f"- supersedes: {supersedes}")
    lines += ["- proposal:", "", proposal, "", "## Risks", "- it might break", "", "## Mitigations", "- test it", ""]
    return "\n".join(lines)


# Model versions (deployments): a valid artifact hash and a rationale long enough to approve with.
SHA = "ab" * 32
APPROVE = "The evaluation is sound and the rollback is ready."


def version_body(ai_model: str = "coder-2026-12", **fields) -> dict:
    body = {
        "family": "coder",
        "ai_model": ai_model,
        "artifact_uri": f"s3://models/{ai_model}.safetensors",
        "artifact_sha256": SHA,
        "evaluation": {"failure_rate": 0.03, "p95_ms": 4200, "red_team_pass_rate": 0.95},
    }
    return {**body, **fields}


def register_version(client, ai_model: str = "coder-2026-12", **fields):
    return client.post(
        "/api/v1/models/versions", data=version_body(ai_model, **fields), content_type="application/json"
    )


def register_task(client, external_id: str, ai_model: str | None = "coder-2026-12", **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", "ai_model": ai_model, **fields}
    return client.post("/api/v1/tasks", data=body, content_type="application/json")


def live_database_url() -> str:
    """The test database as a DATABASE_URL, for processes a test starts (a worker, a live server)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def admin_connection(autocommit: bool = True, dbname: str | None = None):
    """A psycopg connection of the test's own to the test database (or `dbname` on its server)."""
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    return psycopg.connect(
        host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, user=s.get("USER") or "postgres",
        password=s.get("PASSWORD") or None, dbname=dbname or s["NAME"], autocommit=autocommit,
    )  # fmt: skip


def run_rq_worker_burst(timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a real `rqworker --burst` against the test database until the queue is empty.
    Needs REDIS_URL (CI's PostgreSQL pass) and a transactional test."""
    env = {**os.environ, "DATABASE_URL": live_database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def forget_keys_made_since(connection, before: set[bytes]) -> int:
    """Delete every key in the Redis database that was not there in `before`; returns how many."""
    made = [key for key in connection.scan_iter(count=1000) if key not in before]
    for start in range(0, len(made), 500):
        connection.delete(*made[start : start + 500])
    return len(made)
