"""The audits API: send a run's results (the tool's file as text in JSON, or as a
multipart upload) and read a version's audit status. Endpoints only translate
HTTP to services and selectors."""

from __future__ import annotations

import json
from datetime import datetime

from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from ninja import Query, Router, Schema, Status

from assurance import selectors, services
from assurance.models import AuditRun
from deployments.api import AnyScopeAuth
from tasks.auth import ApiKeyAuth

router = Router(tags=["audits"])

FIELDS = ("suite", "ai_model", "format")


class ErrorOut(Schema):
    detail: str
    field: str | None = None


ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut, 415: ErrorOut, 422: ErrorOut}


class CriterionOut(Schema):
    metric: str
    comparison: str
    threshold: float
    value: float | None
    outcome: str


class RunOut(Schema):
    id: int
    suite: str
    ai_model: str
    format: str
    verdict: str
    effective_verdict: str
    verdict_reason: str
    figures: dict
    criteria: list[CriterionOut]
    tool_version: str
    skipped_entries: int
    evidence_sha256: str
    evidence_size: int
    due_at: datetime | None
    received_at: datetime
    case: int | None
    sender: str


def run_out(run: AuditRun) -> dict:
    return {
        "id": run.pk,
        "suite": run.suite.name,
        "ai_model": run.ai_model,
        "format": run.format,
        "verdict": run.verdict,
        "effective_verdict": run.effective_verdict,
        "verdict_reason": run.verdict_reason,
        "figures": run.figures,
        "criteria": run.results,
        "tool_version": run.tool_version,
        "skipped_entries": run.skipped_entries,
        "evidence_sha256": run.evidence_sha256,
        "evidence_size": run.evidence_size,
        "due_at": run.due_at,
        "received_at": run.received_at,
        "case": run.case_id,
        "sender": run.sender,
    }


REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["suite", "ai_model", "format", "report"],
                "properties": {
                    "suite": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "The audit suite's name.",
                    },
                    "ai_model": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "description": "The model version audited.",
                    },
                    "format": {"type": "string", "enum": ["promptfoo", "garak"]},
                    "report": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The file's text: promptfoo's results.json or garak's report.jsonl.",
                    },
                },
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["suite", "ai_model", "format", "report"],
                "properties": {
                    "suite": {"type": "string", "minLength": 1, "maxLength": 100},
                    "ai_model": {"type": "string", "minLength": 1, "maxLength": 200},
                    "format": {"type": "string", "enum": ["promptfoo", "garak"]},
                    "report": {"type": "string", "format": "binary"},
                },
            }
        },
    },
}


def _error(status: int, detail: str, field: str | None = None):
    return Status(status, {"detail": detail, "field": field})


def _read_request(request: HttpRequest) -> tuple[dict, bytes, str]:
    """(fields, the file's bytes, its name) from a JSON or a multipart body, or AuditError."""
    kind = (request.content_type or "").lower()
    if kind == "multipart/form-data":
        try:
            request.POST  # noqa: B018 - parse the body now, so a malformed one is refused here
        except MultiPartParserError as exc:
            raise services.BadRequest(f"body: not a valid multipart/form-data body ({exc})", field="body") from None
        upload = request.FILES.get("report")
        if upload is None:
            text = request.POST.get("report")
            if text is None:
                raise services.AuditError("report: attach the file as the multipart field 'report'", field="report")
            content, name = text.encode(), ""
        else:
            if upload.size > services.max_report_bytes():
                raise services.ReportTooLarge(
                    f"report: {upload.size} bytes is over the limit of {services.max_report_bytes()} bytes",
                    field="report",
                )
            content, name = upload.read(), upload.name or ""
        return {f: request.POST.get(f) for f in FIELDS}, content, name
    if kind != "application/json":
        raise services.UnsupportedMediaType("send application/json or multipart/form-data", field="body")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise services.AuditError(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(body, dict):
        raise services.AuditError("body: must be a JSON object", field="body")
    extra = set(body) - {*FIELDS, "report"}
    if extra:
        raise services.AuditError(f"{sorted(extra)[0]}: unknown field", field=sorted(extra)[0])
    report = body.get("report")
    if not isinstance(report, str):
        raise services.AuditError("report: the file's text, as a string", field="report")
    return {f: body.get(f) for f in FIELDS}, report.encode("utf-8", "surrogatepass"), ""


@router.post(
    "/runs",
    auth=ApiKeyAuth("audits"),
    response={200: RunOut, 201: RunOut, **ERRORS},
    summary="Send an audit run's results (promptfoo results.json or garak report.jsonl)",
    openapi_extra={"requestBody": REQUEST_BODY},
)
def submit_run(request: HttpRequest):
    """201 with the verdict and the figures; the same file again for the same suite and
    version, 200 with the same run. A malformed file is 422 naming the line or the
    field, a file over the size limit 413; nothing is stored for either."""
    try:
        fields, content, name = _read_request(request)
        for f in FIELDS:
            if not isinstance(fields[f], str) or not fields[f]:
                raise services.AuditError(f"{f}: required", field=f)
        run, created = services.run_submit(
            suite=fields["suite"],
            ai_model=fields["ai_model"],
            fmt=fields["format"],
            content=content,
            filename=name,
            sender=services.Sender(api_key=request.auth, user=None),
        )
    except services.AuditError as exc:
        return _error(exc.status_code, exc.message, exc.field or None)
    return Status(201 if created else 200, run_out(selectors.run(run.pk)))


class SuiteStatusOut(Schema):
    suite: str
    source: str
    required: bool
    action: str
    state: str
    last_verdict: str | None
    last_at: datetime | None
    latest_verdict: str | None
    latest_run: int | None
    latest_case: int | None
    last_pass_at: datetime | None
    next_due: datetime
    overdue_at: datetime
    overdue: bool


class StatusOut(Schema):
    ai_model: str
    version_status: str
    demoted: bool
    reason: str
    suites: list[SuiteStatusOut]


class StatusQuery(Schema):
    ai_model: str


@router.get(
    "/status",
    auth=AnyScopeAuth("audits", "read"),
    response={200: StatusOut, **ERRORS},
    summary="A model version's audits: each suite's last verdict, when it is next due, whether it is overdue",
)
def audit_status(request: HttpRequest, query: Query[StatusQuery]):
    version = selectors.version_by_ai_model(query.ai_model[:200])
    if version is None:
        return _error(404, f"ai_model: no model version {query.ai_model[:200]!r} is registered", "ai_model")
    now = timezone.now()
    rows = selectors.standings(version, selectors.suites_for(version))
    _, reason = selectors.demotion(version, now=now)
    return {
        "ai_model": version.ai_model,
        "version_status": version.status,
        "demoted": bool(reason),
        "reason": reason,
        "suites": [
            {
                "suite": s.suite,
                "source": s.source,
                "required": s.required,
                "action": s.action,
                "state": s.state(now),
                "last_verdict": s.last_verdict,
                "last_at": s.last_at,
                "latest_verdict": s.latest_verdict,
                "latest_run": s.latest_run_id,
                "latest_case": s.latest_case_id,
                "last_pass_at": s.last_pass_at,
                "next_due": s.due_at,
                "overdue_at": s.overdue_at,
                "overdue": s.overdue(now),
            }
            for s in rows
        ],
    }
