"""Reports in: parse, store and decide on one FSAR report, idempotently on its id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain import actor_name
from reviews import policy, selectors
from reviews.models import (
    Action,
    Case,
    CaseStatus,
    Report,
)
from reviews.reports import ReportInvalid, ReportRecord, parse_any, proposal_fingerprint
from reviews.services.common import NO_RULE_POLICY, _open_case, _reopen
from reviews.services.errors import ReportConflict
from tasks.models import ApiKey


@dataclass(frozen=True)
class IngestResult:
    report: Report
    created: bool


def record_of(report: Report) -> ReportRecord:
    return ReportRecord(
        id=report.report_id,
        timestamp=report.timestamp,
        severity=report.severity,
        block_execution=report.block_execution,
        proposal=report.proposal,
        risks=tuple(report.risks),
        mitigations=tuple(report.mitigations),
        supersedes=report.supersedes_id,
    )


def fingerprint(proposal: str) -> str:
    return hashlib.sha256(proposal_fingerprint(proposal).encode()).hexdigest()


def report_ingest(
    *, raw: bytes, content_type: str = "", filename: str = "", api_key: ApiKey | None = None, user=None
) -> IngestResult:
    """Parse, store and decide on one FSAR report (API, upload form and command).

    Idempotent on the report's `id`: the same record again (whatever its form or
    line endings) returns the stored report with created=False; the same id with
    a different record raises ReportConflict naming the fields. Raises
    ReportInvalid / ReportTooLarge for bad input, with nothing stored.
    """
    record, raw_format = parse_any(raw, content_type=content_type, filename=filename)
    existing = Report.objects.filter(report_id=record.id).first()
    if existing is not None:
        return IngestResult(_same_report(existing, record), False)
    try:
        with transaction.atomic():
            report = _store_report(record, raw=raw, raw_format=raw_format, api_key=api_key, user=user)
    except IntegrityError:
        existing = Report.objects.filter(report_id=record.id).first()
        if existing is None:
            raise
        return IngestResult(_same_report(existing, record), False)
    return IngestResult(report, True)


def _same_report(report: Report, record: ReportRecord) -> Report:
    differences = record_of(report).differences(record)
    if differences:
        raise ReportConflict(
            f"report {record.id!r} already exists with a different {', '.join(differences)}",
            fields=differences,
        )
    return report


def _store_report(record: ReportRecord, *, raw: bytes, raw_format: str, api_key, user) -> Report:
    now = timezone.now()
    previous = None
    if record.supersedes is not None:
        if record.supersedes == record.id:
            raise ReportInvalid("a report cannot supersede itself", field="supersedes")
        previous = Report.objects.select_related("case").filter(report_id=record.supersedes).first()
        if previous is None:
            raise ReportInvalid(f"no report with id {record.supersedes!r}", field="supersedes")
    state = selectors.gate_state()
    rules = policy.active_rules(state.rules_version)
    subject = policy.Subject(
        task_type=record.task_type,
        severity=record.severity,
        block_execution=record.block_execution,
        proposal=record.proposal,
    )
    matched = policy.first_match(rules, subject)
    rule, values = matched if matched else (None, {})
    action = rule.action if rule else Action.HOLD
    reason = rule.describe(values) if rule else "no policy rule matched; held for the committee"
    policy_name = rule.name if rule else NO_RULE_POLICY

    fp = fingerprint(record.proposal)
    precedent = (
        Report.objects.filter(fingerprint=fp, case__status=CaseStatus.REJECTED).order_by("-id").first() if fp else None
    )
    if precedent is not None and action == Action.ALLOW:
        action = Action.HOLD
        values = {**values, "rejected_precedent": precedent.report_id}
        reason = (
            f"the same proposal was rejected before (report {precedent.report_id}, case {precedent.case_id}); "
            "it needs a committee decision"
        )

    # The person answerable for the report: its uploader, or the owner of the key that sent it.
    submitter = user or (api_key.owner if api_key else None)
    case = None
    joined = previous.case if previous is not None and previous.case_id else None
    if joined is not None:
        joined = Case.objects.select_for_update().get(pk=joined.pk)
    if action == Action.DENY:
        case = None
    elif joined is not None and (action == Action.HOLD or joined.status != CaseStatus.ADVISORY):
        # A revision joins its case, voids the votes on the version before, and
        # reopens it: what was approved is not what is now proposed.
        action = Action.HOLD
        case = _reopen(
            joined,
            quorum=rule.quorum if rule else 1,
            why=f"revision {record.id} submitted; earlier votes void",
            revision=record,
            actor=actor_name(user=user, api_key=api_key),
            by=submitter,
        )
        if not reason.startswith("the same proposal"):
            reason = f"{reason}; revision of {record.supersedes}, joins case {case.pk}"
    elif action == Action.HOLD:
        case = _open_case(
            kind=Case.Kind.REPORT,
            status=CaseStatus.OPEN,
            title=f"Report {record.id}",
            rule=rule,
            now=now,
            why=f"report {record.id}: {reason}",
            severity=record.severity,
            by=submitter,
        )
    elif rule is not None and rule.advisory_min_severity is not None and record.severity >= rule.advisory_min_severity:
        values = {**values, "severity": record.severity, "advisory_min_severity": rule.advisory_min_severity}
        reason = f"{reason}; severity {record.severity} ≥ {rule.advisory_min_severity} opens an advisory case"
        if joined is not None:
            case = _reopen(
                joined,
                quorum=joined.quorum,
                why=f"revision {record.id} submitted",
                revision=record,
                actor=actor_name(user=user, api_key=api_key),
                by=submitter,
            )
        else:
            case = _open_case(
                kind=Case.Kind.REPORT,
                status=CaseStatus.ADVISORY,
                title=f"Report {record.id}",
                rule=rule,
                now=now,
                why=f"report {record.id}: advisory",
                severity=record.severity,
                by=submitter,
            )
    elif joined is not None:
        case = _reopen(
            joined,
            quorum=joined.quorum,
            why=f"revision {record.id} submitted",
            revision=record,
            actor=actor_name(user=user, api_key=api_key),
            by=submitter,
        )

    report = Report(
        report_id=record.id,
        timestamp=record.timestamp,
        severity=record.severity,
        block_execution=record.block_execution,
        task_type=record.task_type,
        proposal=record.proposal,
        fingerprint=fp,
        risks=list(record.risks),
        mitigations=list(record.mitigations),
        supersedes=previous,
        raw=raw.decode("utf-8", errors="replace"),
        raw_format=raw_format,
        received_at=now,
        submitted_by=api_key,
        uploaded_by=user,
        case=case,
        rejected_precedent=precedent,
        gate_decision=action,
        gate_reason=reason,
        gate_policy=policy_name,
        gate_values=values,
    )
    report._history_user = submitter
    report._change_reason = f"received ({raw_format}); gate: {action}"
    report.save()
    return report
