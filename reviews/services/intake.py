"""Reports in: parse, store and decide on one FSAR report, idempotently on its id."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from audit.chain import actor_name
from core.history import copy_history_sql, inserts_in_one_statement, save_with_history
from core.sql import insert_fields, insert_sql, insert_values, mark_saved
from reviews import policy, selectors
from reviews.models import (
    Action,
    Case,
    CaseStatus,
    GateState,
    Report,
)
from reviews.reports import ReportInvalid, ReportRecord, ReportTooLarge, parse_any, proposal_folded
from reviews.services.common import NO_RULE_POLICY, _case_opened, _new_case, _open_case, _reopen
from reviews.services.errors import ReportConflict, ReviewError
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
    return hashlib.sha256(proposal_folded(proposal).encode()).hexdigest()


def report_ingest(
    *, raw: bytes, content_type: str = "", filename: str = "", api_key: ApiKey | None = None, user=None
) -> IngestResult:
    """Parse, store and decide on one FSAR report (API, upload form and command).

    Idempotent on the report's `id`: the same record again (whatever its form or
    line endings) returns the stored report with created=False; the same id with
    a different record raises ReportConflict naming the fields. Raises
    ReportInvalid / ReportTooLarge for bad input, with nothing stored.

    The common case is a new id, so the report is stored first and an earlier one
    looked for only when storing fails: on the unique key of `report_id`, or for
    any other reason (a retry of a stored report still answers with it when the
    gate cannot decide now, as when it was looked for first).
    """
    record, raw_format = parse_any(raw, content_type=content_type, filename=filename)
    try:
        report = _store_new(record, raw=raw, raw_format=raw_format, api_key=api_key, user=user)
    except (DatabaseError, ReviewError, ReportInvalid, policy.BrokenRule) as failure:
        try:
            existing = Report.objects.filter(report_id=record.id).first()
        except DatabaseError:
            raise failure from None
        if existing is None:
            raise
        return IngestResult(_same_report(existing, record), False)
    return IngestResult(report, True)


class _NeedsTransaction(Exception):
    """Raised before any write when storing a report would write more than the report
    (a case opened, reopened or locked): store it again inside a transaction."""


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise _NeedsTransaction()


def _store_new(record: ReportRecord, *, raw: bytes, raw_format: str, api_key, user) -> Report:
    """Decide on a new report and store it with its case, all or nothing.

    The decision only reads (the gate's state, the report it revises, a rejected
    precedent), so it is made first. Most reports then write only themselves: where
    a report and its history row go in with one statement (PostgreSQL), that
    statement commits alone, outside a transaction (two round trips fewer); so does a
    report that opens a new case, with the case and both history rows
    (_insert_with_new_case). A report that reopens or joins a case is stored inside a
    transaction with it.

    Before all that, the common report (new, allowed or denied, no case) is decided
    without reading and stored with one statement that checks what the decision
    assumed (_store_assuming); only when it did not hold is the decision read and made."""
    alone = inserts_in_one_statement(Report) and not transaction.get_connection().in_atomic_block
    if alone:
        report = _store_assuming(record, raw=raw, raw_format=raw_format, api_key=api_key, user=user)
        if report is not None:
            return report
    prepared = _prepare(record)
    if alone:
        try:
            return _store_report(record, prepared, raw=raw, raw_format=raw_format, api_key=api_key, user=user)
        except _NeedsTransaction:
            pass
    with transaction.atomic():
        return _store_report(record, prepared, raw=raw, raw_format=raw_format, api_key=api_key, user=user)


@dataclass
class UploadOutcome:
    """One file's result, for a person: the upload page's row, the command's line."""

    filename: str
    outcome: str  # ingested | unchanged | conflicting | invalid | unavailable
    detail: str
    report: object = None


def ingest_file(*, name: str, raw: bytes, user=None, api_key=None) -> UploadOutcome:
    """One file through report_ingest, every failure turned into a readable outcome
    (shared by the upload form and `manage.py ingest_reports`)."""
    try:
        result = report_ingest(raw=raw, filename=name, user=user, api_key=api_key)
    except (ReportInvalid, ReportTooLarge) as exc:
        return UploadOutcome(name, "invalid", str(exc))
    except ReportConflict as exc:
        return UploadOutcome(name, "conflicting", exc.message)
    except ReviewError as exc:
        return UploadOutcome(name, "invalid", exc.message)
    except (policy.BrokenRule, DatabaseError) as exc:
        return UploadOutcome(name, "unavailable", f"the gate cannot decide right now: {exc}")
    report = result.report
    return UploadOutcome(name, "ingested" if result.created else "unchanged", report.gate_reason, report)


def _same_report(report: Report, record: ReportRecord) -> Report:
    if report.honeypot:
        # The id is taken; the honeypot is never handed back, even for the same text.
        raise ReportConflict(f"report {record.id!r} already exists with a different record", fields=["id"])
    differences = record_of(report).differences(record)
    if differences:
        raise ReportConflict(
            f"report {record.id!r} already exists with a different {', '.join(differences)}",
            fields=differences,
        )
    return report


@dataclass(frozen=True)
class ReportDecision:
    """What the gate decides on a report, before it is placed in a case: the action,
    the rule that matched (None: no rule matched, held), its values and reason, and
    the last rejected report with the same proposal, if any."""

    action: str
    rule: policy.Rule | None
    values: dict
    reason: str
    policy_name: str
    precedent: Report | None = None
    # True when the rule allowed the report and `precedent` turned that into a hold.
    held_for_precedent: bool = False

    def advisory_threshold(self, severity: int) -> int | None:
        """The rule's advisory severity when this report reaches it (an allowed report
        at or above it opens an advisory case), else None."""
        threshold = self.rule.advisory_min_severity if self.rule is not None else None
        return threshold if threshold is not None and severity >= threshold else None


@dataclass(frozen=True)
class _Prepared:
    """What storing a new report reads before it writes: when it was received, the
    report it revises (if any), its proposal's fingerprint and the gate's decision."""

    now: object
    previous: Report | None
    fingerprint: str
    decision: ReportDecision


def _prepare(record: ReportRecord) -> _Prepared:
    previous = _superseded_report(record)
    fp = fingerprint(record.proposal)
    return _Prepared(timezone.now(), previous, fp, _decide(record, fp))


def _store_report(
    record: ReportRecord,
    prepared: _Prepared,
    *,
    raw: bytes,
    raw_format: str,
    api_key,
    user,
    honeypot: bool = False,
    recorded_by=None,
) -> Report:
    """Place a new report in a case (a revision joins its previous report's case) and
    save it with its history row. Outside a transaction, raises _NeedsTransaction
    before writing anything if it would reopen, join or lock a case (a new case goes
    in with the report, in one statement: _insert_with_new_case). `honeypot` and
    `recorded_by` (the seeding operator, in the report's history) are
    services.honeypot_seed's."""
    now, previous, fp, decision = prepared.now, prepared.previous, prepared.fingerprint, prepared.decision
    # The person answerable for the report: its uploader, or the owner of the key that sent it.
    submitter = user or (api_key.owner if api_key else None)
    joined = None
    if previous is not None and previous.case_id:
        _require_transaction()
        joined = Case.objects.select_for_update().get(pk=previous.case_id)

    def revise(*, quorum: int, why: str) -> Case:
        _require_transaction()
        return _reopen(
            joined, quorum=quorum, why=why, revision=record, actor=actor_name(user=user, api_key=api_key), by=submitter
        )

    opened: list[tuple[Case, str]] = []  # a new case, stored in one statement with the report

    def open_case(*, status: str, why: str) -> Case:
        if not transaction.get_connection().in_atomic_block and inserts_in_one_statement(Report):
            case = _new_case(
                kind=Case.Kind.REPORT, status=status, title=f"Report {record.id}", rule=decision.rule, now=now,
                severity=record.severity,
            )  # fmt: skip
            opened.append((case, why))
            return case
        _require_transaction()
        return _open_case(
            kind=Case.Kind.REPORT,
            status=status,
            title=f"Report {record.id}",
            rule=decision.rule,
            now=now,
            why=why,
            severity=record.severity,
            by=submitter,
        )

    decision, case = _place(decision, record, joined, revise=revise, open_case=open_case)
    report = _new_report(
        record, fp=fp, now=now, previous=previous, case=case, decision=decision, raw=raw, raw_format=raw_format,
        api_key=api_key, user=user, honeypot=honeypot,
    )  # fmt: skip
    # The history row is copied by the database (core.history; no receiver but
    # simple-history's listens to a report's save).
    how = "seeded as a honeypot" if honeypot else "received"
    reason, user = f"{how} ({raw_format}); gate: {decision.action}", recorded_by or submitter
    if opened:
        ((case, why),) = opened
        _insert_with_new_case(report, case, reason=reason, user=user, case_reason=why, case_user=submitter)
        _case_opened(case)  # committed: enqueued now
    else:
        save_with_history(report, reason=reason, user=user)
    return report


def _new_report(
    record: ReportRecord, *, fp, now, previous, case, decision, raw, raw_format, api_key, user, honeypot
) -> Report:
    return Report(
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
        rejected_precedent=decision.precedent,
        gate_decision=decision.action,
        gate_reason=decision.reason,
        gate_policy=decision.policy_name,
        gate_values=decision.values,
        honeypot=honeypot,
    )


def _store_assuming(record: ReportRecord, *, raw: bytes, raw_format: str, api_key, user) -> Report | None:
    """Store a new report that writes only itself (no revision; allowed below the
    advisory severity, or denied) with one statement and no read before it, outside a
    transaction (PostgreSQL): decided on the rules this process holds (policy.cached_version)
    and no rejected precedent, and inserted with its history row only if, as the
    statement sees the database, the gate's rules version is still that one and no
    rejected report has the same proposal (_insert_if_assumed). Returns None, having
    written nothing, when the report is not of that kind or the assumption did not
    hold: it is then decided on what is read (_prepare), as before. The same decision
    either way; one round trip instead of two for most reports."""
    version = policy.cached_version()
    if version is None or record.supersedes is not None:
        return None
    decision = _decision(record, policy.active_rules(version), None)
    if decision.action == Action.HOLD or (
        decision.action == Action.ALLOW and decision.advisory_threshold(record.severity) is not None
    ):
        return None  # it opens a case
    fp = fingerprint(record.proposal)
    report = _new_report(
        record, fp=fp, now=timezone.now(), previous=None, case=None, decision=decision, raw=raw,
        raw_format=raw_format, api_key=api_key, user=user, honeypot=False,
    )  # fmt: skip
    submitter = user or (api_key.owner if api_key else None)
    reason = f"received ({raw_format}); gate: {decision.action}"
    return report if _insert_if_assumed(report, version=version, reason=reason, user=submitter) else None


_IF_ASSUMED: dict[str, str] = {}


def _insert_if_assumed(report: Report, *, version: str, reason: str, user) -> bool:
    """Insert a new report and its history row (copied by the database, as
    save_with_history does) with one statement, which commits alone, if the gate's
    rules version is `version` and no rejected report has the report's fingerprint
    (selectors' precedent read, in the statement): False, nothing written, if not.
    Sets the primary key."""
    connection = connections[router.db_for_write(Report, instance=report)]
    history, history_params = copy_history_sql(Report, connection, reason=reason, user=user, source="new_row")
    if connection.vendor not in _IF_ASSUMED:
        qn = connection.ops.quote_name
        fields = insert_fields(Report)
        # INSERT … SELECT (a WHERE needs it) types its values by their casts, not by the
        # columns as VALUES does; cast to the column's type without its length, so that a
        # value too long is refused as by VALUES, not cut.
        values = ", ".join(f"CAST(%s AS {re.sub(r'[(].*[)]', '', f.db_type(connection))})" for f in fields)
        state = qn(GateState._meta.db_table)
        _IF_ASSUMED[connection.vendor] = (
            f"WITH new_row AS (INSERT INTO {qn(Report._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"SELECT {values} WHERE EXISTS (SELECT 1 FROM {state} WHERE {qn('id')} = 1 AND {qn('rules_version')} = %s) "
            f"AND NOT EXISTS ({selectors._precedent_sql(connection)}) RETURNING *) "
            f"{history} RETURNING {qn('id')}"
        )
    params = [*insert_values(report, connection), version, report.fingerprint, CaseStatus.REJECTED, *history_params]
    with connection.cursor() as cursor:
        cursor.execute(_IF_ASSUMED[connection.vendor], params)
        row = cursor.fetchone()
    if row is None:
        return False
    mark_saved(report, row[0], connection)
    return True


_WITH_NEW_CASE: dict[str, str] = {}


def _insert_with_new_case(report: Report, case: Case, *, reason: str, user, case_reason: str, case_user) -> None:
    """Insert a new case, the report in it and both their history rows with one
    statement (PostgreSQL: data-modifying CTEs), which commits alone, as
    save_with_history would write them one by one in a transaction: the history rows
    copied by the database from the rows written (core.history). Sets both primary keys."""
    connection = connections[router.db_for_write(Report, instance=report)]
    case_history, case_params = copy_history_sql(
        Case, connection, reason=case_reason, user=case_user, source="new_case"
    )
    report_history, report_params = copy_history_sql(Report, connection, reason=reason, user=user, source="new_row")
    fields = insert_fields(Report)
    at = fields.index(Report._meta.get_field("case"))
    if connection.vendor not in _WITH_NEW_CASE:
        qn = connection.ops.quote_name
        values = ["%s"] * len(fields)
        values[at] = f"(SELECT {qn('id')} FROM new_case)"
        _WITH_NEW_CASE[connection.vendor] = (
            f"WITH new_case AS ({insert_sql(Case, connection, ' RETURNING *')}), "
            f"case_history AS ({case_history}), "
            f"new_row AS (INSERT INTO {qn(Report._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(values)}) RETURNING *) "
            f"{report_history} RETURNING {qn('id')}, {qn('case_id')}"
        )
    row = insert_values(report, connection)
    del row[at]
    with connection.cursor() as cursor:
        cursor.execute(
            _WITH_NEW_CASE[connection.vendor],
            [*insert_values(case, connection), *case_params, *row, *report_params],
        )
        report_pk, case_pk = cursor.fetchone()
    mark_saved(case, case_pk, connection)
    mark_saved(report, report_pk, connection)
    report.case = case


def _superseded_report(record: ReportRecord) -> Report | None:
    """The report this one revises (its `supersedes`), which must exist and not be itself."""
    if record.supersedes is None:
        return None
    if record.supersedes == record.id:
        raise ReportInvalid("a report cannot supersede itself", field="supersedes")
    previous = Report.objects.select_related("case").filter(report_id=record.supersedes, honeypot=False).first()
    if previous is None:
        raise ReportInvalid(f"no report with id {record.supersedes!r}", field="supersedes")
    return previous


def _decide(record: ReportRecord, fp: str) -> ReportDecision:
    """The first policy rule that matches the report (none: hold); an allow becomes a
    hold when a report with the same proposal was rejected before."""
    # The gate's state and the rejected precedent: one round trip on PostgreSQL.
    state, precedent = selectors.gate_state_and_rejected_precedent(fp)
    return _decision(record, policy.active_rules(state.rules_version), precedent)


def _decision(record: ReportRecord, rules: tuple[policy.Rule, ...], precedent: Report | None) -> ReportDecision:
    """_decide's decision from the rules and the precedent it read."""
    subject = policy.Subject(
        task_type=record.task_type,
        severity=record.severity,
        block_execution=record.block_execution,
        proposal=record.proposal,
    )
    matched = policy.first_match(rules, subject)
    if matched:
        rule, values = matched
        decision = ReportDecision(rule.action, rule, values, rule.describe(values), rule.name)
    else:
        decision = ReportDecision(
            Action.HOLD, None, {}, "no policy rule matched; held for the committee", NO_RULE_POLICY
        )
    # A honeypot is never a precedent: the AI would read its id in the decision
    # (selectors.rejected_precedent skips honeypots, and so does the combined read).
    if precedent is None or decision.action != Action.ALLOW:
        return replace(decision, precedent=precedent)
    return replace(
        decision,
        action=Action.HOLD,
        values={**decision.values, "rejected_precedent": precedent.report_id},
        reason=(
            f"the same proposal was rejected before (report {precedent.report_id}, case {precedent.case_id}); "
            "it needs a committee decision"
        ),
        precedent=precedent,
        held_for_precedent=True,
    )


def _place(
    decision: ReportDecision, record: ReportRecord, joined: Case | None, *, revise, open_case
) -> tuple[ReportDecision, Case | None]:
    """The case the report goes to, and the decision as that changes it.

    Denied: none. A revision joins its case (`joined`, locked) and reopens it,
    voiding the votes on the version before: held, unless the case is advisory and
    the report allowed (then it stays advisory). A new held report opens a case; an
    allowed one at the rule's advisory severity opens an advisory case."""
    if decision.action == Action.DENY:
        return decision, None
    if joined is not None and (decision.action == Action.HOLD or joined.status != CaseStatus.ADVISORY):
        case = revise(
            quorum=decision.rule.quorum if decision.rule else 1,
            why=f"revision {record.id} submitted; earlier votes void",
        )
        reason = decision.reason
        if not decision.held_for_precedent:
            reason = f"{reason}; revision of {record.supersedes}, joins case {case.pk}"
        return replace(decision, action=Action.HOLD, reason=reason), case
    if decision.action == Action.HOLD:
        return decision, open_case(status=CaseStatus.OPEN, why=f"report {record.id}: {decision.reason}")
    threshold = decision.advisory_threshold(record.severity)
    if threshold is not None:
        decision = replace(
            decision,
            values={**decision.values, "severity": record.severity, "advisory_min_severity": threshold},
            reason=f"{decision.reason}; severity {record.severity} ≥ {threshold} opens an advisory case",
        )
    if joined is not None:  # an advisory case, revised by an allowed report
        return decision, revise(quorum=joined.quorum, why=f"revision {record.id} submitted")
    if threshold is not None:
        return decision, open_case(status=CaseStatus.ADVISORY, why=f"report {record.id}: advisory")
    return decision, None
