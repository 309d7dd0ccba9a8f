"""Helpers for the reviews tests of issue 17 (first views, honeypots, the chair, the alert condition)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from typing import Any

from fsar.testing import report_md

WHY = "I read the report and the rollback plan."


def held_report(post_report, report_id: str = "r1", *, severity: int = 35, proposal: str = "") -> int:
    """A report the default policy holds for the committee (severity 30–49: quorum 2); its case id."""
    text = report_md(report_id, severity=severity, **({"proposal": proposal} if proposal else {}))
    response = post_report(text)
    assert response.status_code == 201, response.content
    return response.json()["gate"]["case"]


def alerts_firing_for(monkeypatch, *models: str) -> list[str]:
    """Stand in for indicators.selectors.model_alert_firing (built by another helper):
    an alert fires for exactly `models`. Returns the names the gate asked about."""
    import indicators

    asked: list[str] = []

    def model_alert_firing(ai_model: str) -> bool:
        asked.append(ai_model)
        return ai_model in models

    fake = types.ModuleType("indicators.selectors")
    fake.model_alert_firing = model_alert_firing
    monkeypatch.setitem(sys.modules, "indicators.selectors", fake)
    monkeypatch.setattr(indicators, "selectors", fake, raising=False)
    return asked


def one_statement_analyzed(run: Callable[[], Any]) -> tuple[Any, list[dict]]:
    """`run()`'s result, and the nodes of the EXPLAIN ANALYZE plan (PostgreSQL) of the one
    statement it makes, flattened."""
    from django.db import connection

    calls = []

    def capture(execute, sql, params, many, context):
        calls.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        result = run()
    ((sql, params),) = calls
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def nodes(node):
        yield node
        for child in node.get("Plans", ()):
            yield from nodes(child)

    return result, list(nodes(plan[0]["Plan"]))


def rows_read(scans: list[dict]) -> int:
    """The rows the plan's scans read: those they returned and those they read and threw away."""
    return sum(
        (node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0))
        * node["Actual Loops"]
        for node in scans
    )
