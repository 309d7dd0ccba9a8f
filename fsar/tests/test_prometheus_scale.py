"""/metrics stays cheap at 1M tasks: the same handful of queries, none of them a
sequential scan of execution_tasks or of its history (PostgreSQL EXPLAIN; SQLite
has no comparable planner, so these tests skip there and say so)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fsar.testing import NOW
from fsar.tests.prometheus_support import TOKEN, samples, scrape
from tasks.models import ExecutionTask

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="EXPLAIN of PostgreSQL plans at 1M tasks")]
TASKS = 1_000_000


def load_a_million_tasks() -> None:
    """1M tasks over 60 days, each with its registration history row: most finished,
    5% denied, 300 held, 500 registered in the last hour (plus their history rows)."""
    history = ExecutionTask.history.model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO execution_tasks
              (external_id, task_type, status, payload, created_at, started_at, finished_at, duration_ms,
               error, ai_model, source, gate_decision, gate_reason, gate_policy, rollup_pending)
            SELECT 'bulk-' || g,
                   (ARRAY['implement_idea', 'idea_implementation', 'self_improvement'])[1 + g %% 3],
                   CASE WHEN g %% 20 = 0 THEN 'denied'
                        WHEN g > {TASKS} - 300 THEN 'held'
                        WHEN g > {TASKS} - 800 THEN 'registered'
                        WHEN g %% 7 = 0 THEN 'failed' ELSE 'succeeded' END,
                   '{{}}'::jsonb,
                   %(now)s - make_interval(secs => ({TASKS} - g) * 5.2),
                   %(now)s - make_interval(secs => ({TASKS} - g) * 5.2),
                   %(now)s - make_interval(secs => ({TASKS} - g) * 5.2 - 3),
                   1000 + g %% 5000, '', 'model-' || (g %% 4), 'api',
                   CASE WHEN g %% 20 = 0 THEN 'deny' WHEN g > {TASKS} - 300 THEN 'hold' ELSE 'allow' END,
                   'bulk',
                   CASE WHEN g %% 20 = 0 THEN 'deny-rule' WHEN g > {TASKS} - 300 THEN 'hold-rule' ELSE 'default' END,
                   false
            FROM generate_series(1, {TASKS}) AS g
            """,
            {"now": NOW},
        )
        cursor.execute(
            f"""
            INSERT INTO {history}
              (id, external_id, task_type, status, created_at, started_at, finished_at, duration_ms,
               cost_micros, tokens, error, ai_model, customer_ref, proposal_ref, source, submitted_by_id,
               gate_decision, gate_reason, gate_policy, gate_case,
               history_date, history_change_reason, history_type, history_user_id, history_api_key_id)
            SELECT id, external_id, task_type, status, created_at, started_at, finished_at, duration_ms,
                   cost_micros, tokens, error, ai_model, customer_ref, proposal_ref, source, submitted_by_id,
                   gate_decision, gate_reason, gate_policy, gate_case,
                   created_at, 'registered', '+', NULL, NULL
            FROM execution_tasks WHERE external_id LIKE %(bulk)s
            """,
            {"bulk": "bulk-%"},
        )
        cursor.execute(f"ANALYZE execution_tasks; ANALYZE {history}")


def load_audits(versions: int = 60, suites: int = 5, runs_each: int = 100) -> None:
    """60 model versions (more than the labels allow), 5 suites, 100 runs per pair (30,000)."""
    from assurance.models import AuditRun
    from assurance.tests.support import make_suite, make_version

    version_rows = [make_version(f"model-{v}") for v in range(versions)]
    suite_rows = [make_suite(f"suite-{s}", family_glob="") for s in range(suites)]
    runs = AuditRun._meta.db_table
    with connection.cursor() as cursor:
        for version in version_rows:
            for suite in suite_rows:
                cursor.execute(
                    f"""
                    INSERT INTO {runs}
                      (suite_id, model_version_id, ai_model, received_at, verdict, verdict_reason, figures,
                       results, details, format, tool_version, skipped_entries, evidence_sha256,
                       evidence_size, sender, decided_verdict)
                    SELECT %s, %s, %s, %s::timestamptz - make_interval(days => g),
                           CASE WHEN g = 1 THEN 'fail' ELSE 'pass' END,
                           '', '{{}}', '[]', '{{}}', 'garak', '', 0, md5(%s || '-' || g) || md5(g::text), 0, '', ''
                    FROM generate_series(1, %s) AS g
                    """,
                    [suite.pk, version.pk, version.ai_model, NOW, f"{version.pk}-{suite.pk}", runs_each],
                )
        cursor.execute(f"ANALYZE {runs}")


def test_a_scrape_at_a_million_tasks_is_a_handful_of_indexed_queries(client, settings, capsys, frozen_clock):
    settings.METRICS_TOKEN = TOKEN
    load_a_million_tasks()
    load_audits()
    assert ExecutionTask.objects.count() == TASKS

    scrape(client)  # the first request of a process imports and warms up; Prometheus scrapes every 15-60 s
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        text = scrape(client)
    elapsed = time.perf_counter() - started
    in_database = sum(float(q["time"]) for q in ctx.captured_queries)
    with capsys.disabled():
        print(
            f"\n/metrics at {TASKS:,} tasks: {len(ctx.captured_queries)} queries, "
            f"{in_database * 1000:.0f} ms in the database, {elapsed * 1000:.0f} ms for the request; "
            f"per query (ms): {[round(float(q['time']) * 1000, 1) for q in ctx.captured_queries]}"
        )

    assert len(ctx.captured_queries) <= 10
    plans = []
    with connection.cursor() as cursor:
        for query in ctx.captured_queries:
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    every_plan = "\n\n".join(plans)
    assert "Seq Scan on execution_tasks" not in every_plan, every_plan
    assert "Seq Scan on tasks_historicalexecutiontask" not in every_plan, every_plan
    assert "Seq Scan on assurance_auditrun" not in every_plan, every_plan

    values = samples(text)
    # The last hour's registrations, 5.2 s apart: the 693 newest, each counted once.
    decided = {dict(k[1])["action"]: v for k, v in values.items() if k[0] == "fsar_gate_decisions_last_hour"}
    newest = range(TASKS - 692, TASKS + 1)
    assert decided == {
        "allow": sum(1 for g in newest if g % 20 and g <= TASKS - 300),
        "hold": sum(1 for g in newest if g % 20 and g > TASKS - 300),
        "deny": sum(1 for g in newest if not g % 20),
    }
    assert values[("fsar_tasks_held", (("rule", "hold-rule"),))] == 300 - 300 // 20
    verdicts = [k for k in values if k[0] == "fsar_audit_verdict"]
    assert len(verdicts) == 50 * 5  # the 50 model labels allowed, each suite's latest run
    assert all(dict(k[1])["verdict"] == "fail" for k in verdicts)
