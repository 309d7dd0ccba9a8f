"""Schemathesis hooks for the API fuzz run (fsar/tests/test_api_fuzz.py), loaded
through SCHEMATHESIS_HOOKS.

JSON Schema states one value at a time. A few of the API's rules compare two
values (`since` before `until`), look at the clock (a backfilled task finished
in the past) or at stored data (a `proposal_id` that exists); each operation's
description states them and the server answers 422 naming the rule. Those 422s,
and only those, are not counted as "schema-valid request rejected" (ST202).
Every other check stays on for them, and every other 422 still fails the run.
"""

from __future__ import annotations

import schemathesis

RULES_BEYOND_JSON_SCHEMA: dict[str, tuple[str, ...]] = {
    "GET /api/v1/metrics/tasks": (
        "since: must be before until",
        "since: must be in the past when until is not given",
        "until: the window may be at most",
    ),
    "GET /api/v1/metrics/tasks/series": (
        "since: must be before until",
        "since: must be in the past when until is not given",
        "until: the window may be at most",
        "bucket: more than",
    ),
    "POST /api/v1/tasks": ("proposal_id: no report with id",),
    "POST /api/v1/tasks/bulk": (
        ".finished_at is before started_at",
        ".finished_at is in the future",
        "appears twice in this request",
        "the earliest start a backfill takes",  # only 2000-01-01 at a positive offset: 1999 in UTC
    ),
    "POST /api/v1/proposals": (
        "supersedes: no report with id",
        "supersedes: a report cannot supersede itself",
        "which the markdown form cannot express",
    ),
}
# A markdown report is a grammar (docs/fsar-report-format.md, tested in
# reviews/tests/test_report_format.py), not a JSON Schema: the schema says "a string".
GRAMMARS = ("text/markdown",)


def rule_beyond_json_schema(operation: str, detail: str) -> bool:
    return any(rule in detail for rule in RULES_BEYOND_JSON_SCHEMA.get(operation, ()))


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure except a 422 for schema-valid data that names one of the
    operation's stated rules beyond JSON Schema."""
    if failure.code != "ST202" or response.status_code != 422:
        return True
    if (case.media_type or "").startswith(GRAMMARS):
        return False
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        return True
    return not rule_beyond_json_schema(case.operation.label, detail)
