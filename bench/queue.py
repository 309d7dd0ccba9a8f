"""The committee queue at 100,000 open cases, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench queue [--cases=N] [--keep]

Creates its own database (fsar_bench_queue), migrates it, loads N open cases
(default 100,000; severities 0–60, due times spread over ±10 days, a fifth
claimed) and 20,000 votes with COPY, then in the same run times, through
Django's test client as a logged-in committee member (middleware, session,
template, every query):

- the baseline: a plain template page (`/bench/plain/`: the site layout, no
  queries of its own);
- `/reviews/` (first page of 25), `/reviews/?show=unclaimed`, `/reviews/?show=overdue`,
  `/reviews/?min_severity=50`, and a page deep in the keyset (cursor of row 5,000).

Reports each page's query count and median server time against the baseline's.
Goal: ≤ 10 queries and ≤ 3× the baseline. Drops the database unless --keep.
"""

from __future__ import annotations

import html
import os
import platform
import random
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from bench.common import bench_db, log, median_ms, options, own_database, postgres_url_or_none

BENCH_DB = bench_db("queue")
RUNS = 15
VOTES = 20_000  # on as many distinct cases (fewer when there are fewer cases)


def main(argv: list[str]) -> int:
    cases = int(options(argv).get("cases", 100_000))
    url = postgres_url_or_none("queue")
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url:
        os.environ["DATABASE_URL"] = bench_url
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.gate_settings"
        return run(cases)


def run(count: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE

    users = get_user_model().objects
    member = users.create_user(username="bench-member", password="x")
    member.groups.add(Group.objects.get(name=COMMITTEE))
    other = users.create_user(username="bench-other", password="x")
    other.groups.add(Group.objects.get(name=COMMITTEE))

    log(f"loading {count:,} open cases and {min(VOTES, count):,} votes …")
    rng = random.Random(5)
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        raw = cursor.connection
        columns = (
            "kind, status, title, rule_name, task_type, ai_model, quorum, approval_valid_hours, decide_by_majority, "
            "version, severity, short_of_members, opened_at, due_at, rationale, claimed_by_id, claimed_until"
        )
        with raw.cursor().copy(f"COPY reviews_case ({columns}) FROM STDIN") as copy:
            for i in range(count):
                claimed = rng.random() < 0.2
                copy.write_row(
                    (
                        "report" if i % 3 else "tasks",
                        "open" if i % 10 else "changes_requested",
                        f"Report bench-{i}",
                        "severity-30-hold",
                        "" if i % 3 else "implement_idea",
                        "" if i % 3 else f"model-{i}",  # one waiting task case per subject
                        2,
                        2160,
                        False,
                        1,
                        rng.randint(0, 60),
                        False,
                        now - timedelta(days=3),
                        now + timedelta(seconds=rng.uniform(-10, 10) * 86400),
                        "",
                        (member.pk if rng.random() < 0.5 else other.pk) if claimed else None,
                        now + timedelta(minutes=30) if claimed else None,
                    )
                )
        cursor.execute("SELECT min(id), max(id) FROM reviews_case")
        low, high = cursor.fetchone()
        with raw.cursor().copy(
            "COPY reviews_vote (case_id, case_version, member_id, choice, rationale, created_at) FROM STDIN"
        ) as copy:
            for case_id in rng.sample(range(low, high + 1), min(VOTES, high - low + 1)):
                voter = member.pk if rng.random() < 0.3 else other.pk
                copy.write_row((case_id, 1, voter, "approve", "benchmark vote with a rationale", now))
        cursor.execute("ANALYZE reviews_case")
        cursor.execute("ANALYZE reviews_vote")

    client = Client()
    client.force_login(member)
    first = client.get("/reviews/")
    assert first.status_code == 200, first.status_code
    cursor_after = None
    page = first
    from reviews.selectors import QUEUE_PAGE_SIZE

    for _ in range(5000 // QUEUE_PAGE_SIZE):  # walk to row 5,000, following each page's own "Next" link
        cursor_after = html.unescape(re.search(r'<a href="(\?[^"]+)" rel="next"', page.content.decode()).group(1))
        page = client.get("/reviews/" + cursor_after)
    pages = {
        "plain template page (baseline)": "/bench/plain/",
        "/reviews/ (first page)": "/reviews/",
        "/reviews/?show=unclaimed": "/reviews/?" + urlencode({"show": "unclaimed"}),
        "/reviews/?show=overdue": "/reviews/?" + urlencode({"show": "overdue"}),
        "/reviews/?min_severity=50": "/reviews/?" + urlencode({"min_severity": 50}),
        "/reviews/ at row 5,000 (keyset)": "/reviews/" + cursor_after,
    }
    results = {}
    for name, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        results[name] = (len(queries), median_ms(lambda p=path: client.get(p), runs=RUNS))
    baseline = results["plain template page (baseline)"][1]
    log(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        log(f"PostgreSQL {cursor.fetchone()[0]}, {count:,} open cases, median of {RUNS} runs")
    log("| page | queries | median ms | × baseline |")
    log("|---|---|---|---|")
    worst = 0.0
    for name, (queries, ms) in results.items():
        ratio = ms / baseline
        if name != "plain template page (baseline)":
            worst = max(worst, ratio)
        log(f"| {name} | {queries} | {ms:.1f} | {ratio:.2f} |")
    max_queries = max(q for n, (q, _) in results.items() if n.startswith("/reviews"))
    log(f"goal: ≤ 10 queries (worst {max_queries}), ≤ 3× baseline (worst {worst:.2f}×)")
    return 0 if max_queries <= 10 and worst <= 3 else 1
