"""The agent API for FSAR reports: submit one (markdown or JSON) and read it back
with the gate's decision. Endpoints only translate HTTP to services."""

from __future__ import annotations

from datetime import datetime

from django.db import DatabaseError
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import BaseModel

from reviews import policy, selectors, services
from reviews.models import Report
from reviews.reports import (
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_SEVERITY,
    NEW_ID_PATTERN,
    TEXT_PATTERN,
    format_timestamp,
)
from tasks.api import DATETIME_PATTERN, GateCase
from tasks.auth import ApiKeyAuth
from tasks.gate import GateUnavailable

router = Router(tags=["proposals"])


class ProposalGateOut(BaseModel):
    decision: str
    reason: str
    policy: str | None
    case: GateCase
    case_status: str | None
    rationale: str | None
    values: dict
    rejected_precedent: str | None


# Plain pydantic models, as tasks.api's answers (no ninja root validator on the hot path).
class ProposalOut(BaseModel):
    id: str
    timestamp: str
    severity: int
    block_execution: bool
    task_type: str | None
    supersedes: str | None
    proposal: str
    risks: list[str]
    mitigations: list[str]
    received_at: datetime
    gate: ProposalGateOut


class ErrorOut(Schema):
    detail: str


def proposal_out(report: Report) -> dict:
    case = report.case
    decided = case is not None and case.decided_at is not None
    return {
        "id": report.report_id,
        "timestamp": format_timestamp(report.timestamp),
        "severity": report.severity,
        "block_execution": report.block_execution,
        "task_type": report.task_type,
        "supersedes": report.supersedes_id,
        "proposal": report.proposal,
        "risks": report.risks,
        "mitigations": report.mitigations,
        "received_at": report.received_at,
        "gate": {
            "decision": report.gate_decision,
            "reason": report.gate_reason,
            "policy": report.gate_policy or None,
            "case": report.case_id,
            "case_status": case.status if case is not None else None,
            "rationale": case.rationale if decided else None,
            "values": report.gate_values,
            "rejected_precedent": report.rejected_precedent.report_id if report.rejected_precedent_id else None,
        },
    }


REPORT_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}
REPORT_TEXT = {"type": "string", "pattern": TEXT_PATTERN}
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut, 503: ErrorOut}
BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "One FSAR report, in either form (docs/fsar-report-format.md).",
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "timestamp", "proposal", "severity", "block_execution"],
                    "properties": {
                        "id": {**REPORT_ID, "pattern": NEW_ID_PATTERN},
                        "timestamp": {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN},
                        "proposal": {
                            **REPORT_TEXT,
                            "description": "Markdown. No top-level `## Risks` or `## Mitigations` line and no "
                            "unclosed code fence outside fences (the markdown form could not express it).",
                        },
                        "severity": {"type": "integer", "minimum": 0, "maximum": MAX_SEVERITY},
                        "risks": {"anyOf": [{"type": "array", "items": REPORT_TEXT}, {"type": "null"}]},
                        "mitigations": {"anyOf": [{"type": "array", "items": REPORT_TEXT}, {"type": "null"}]},
                        "block_execution": {"type": "boolean"},
                        "supersedes": {
                            "anyOf": [REPORT_ID, {"type": "null"}],
                            "description": "The id of a report already submitted, which this one revises.",
                        },
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    auth=ApiKeyAuth("reports"),
    response={200: ProposalOut, 201: ProposalOut, **ERRORS},
    summary="Submit an FSAR report (text/markdown or application/json)",
    openapi_extra=BODY_DOC,
)
def submit_proposal(request: HttpRequest):
    """201 with the stored report and the gate's decision; the same report again
    (in either form) answers 200; the same id with a different record, 409."""
    try:
        result = services.report_ingest(raw=request.body, content_type=request.content_type or "", api_key=request.auth)
    except (policy.BrokenRule, DatabaseError) as exc:
        raise GateUnavailable(str(exc)) from exc
    # A new report is answered as stored: its case and rejected precedent are the objects
    # it was stored with, in the transaction that committed them (no read back).
    # Validated here: ninja passes a model of the answer's own type through as it is.
    return Status(201 if result.created else 200, ProposalOut.model_validate(proposal_out(result.report)))


@router.get(
    "/{report_id}",
    auth=ApiKeyAuth("read"),
    response={200: ProposalOut, **ERRORS},
    summary="One report with the gate's decision, and its case's status and rationale once decided",
)
def get_proposal(request: HttpRequest, report_id: str):
    # A NUL cannot be in any stored id (and PostgreSQL refuses it in a query).
    report = selectors.report_for_client(report_id) if "\x00" not in report_id else None
    if report is None:
        raise Report.DoesNotExist(f"No report with id {report_id!r}.")
    return proposal_out(report)
