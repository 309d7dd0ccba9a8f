"""Every state change in reviews goes through one function here: reports in,
gate decisions, cases decided, the kill switch, and callbacks.

Each write is atomic, locks the row it changes, records who and why in history,
and defers side effects (RQ jobs) to transaction.on_commit.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit.chain import actor_name, audit_append
from reviews import policy, selectors
from reviews.models import (
    QUEUE_STATUSES,
    WAITING_STATUSES,
    Action,
    CallbackDelivery,
    CallbackEndpoint,
    Case,
    CaseStatus,
    GateState,
    PolicyChange,
    PolicyRule,
    Report,
    ReviewSettings,
    new_rules_version,
)
from reviews.reports import ReportInvalid, ReportRecord, parse_any, proposal_fingerprint
from tasks.gate import GateDecision, require_transaction
from tasks.models import ApiKey, ExecutionTask, TaskStatus
from tasks.services import Actor, task_gate_update

logger = logging.getLogger(__name__)

PAUSE_POLICY = "global-pause"


NO_RULE_POLICY = "no-matching-rule"


def _chain(kind: str, *, case: Case | None = None, subject: str = "", by=None, actor: str = "", **data) -> None:
    """Append a decision-bearing event to the audit chain, in the caller's transaction."""
    audit_append(kind=kind, subject=subject or f"case:{case.pk}", actor=actor or actor_name(user=by), data=data)


def _void_votes(case: Case, *, old_version: int, why: str, by=None, actor: str = "") -> None:
    """Put the votes a version bump voids on the chain (one entry listing them)."""
    voided = list(case.votes.filter(case_version=old_version).values("pk", "member__username", "choice"))
    if voided:
        _chain(
            "vote.voided",
            case=case,
            by=by,
            actor=actor,
            version=old_version,
            new_version=case.version,
            why=why,
            votes=[{"vote": v["pk"], "member": v["member__username"], "choice": v["choice"]} for v in voided],
        )


class ReviewError(Exception):
    status_code = 409

    def __init__(self, message: str, **extra) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ReportConflict(ReviewError):
    status_code = 409


class NotAllowed(ReviewError):
    status_code = 409


# ------------------------------------------------------------------ reports in


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
            )
    elif joined is not None:
        case = _reopen(
            joined,
            quorum=joined.quorum,
            why=f"revision {record.id} submitted",
            revision=record,
            actor=actor_name(user=user, api_key=api_key),
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
    report._history_user = user or (api_key.owner if api_key else None)
    report._change_reason = f"received ({raw_format}); gate: {action}"
    report.save()
    return report


def _open_case(*, kind: str, status: str, title: str, rule: policy.Rule | None, now, why: str, **subject) -> Case:
    case = Case(
        kind=kind,
        status=status,
        title=title[:300],
        rule_id=rule.id if rule else None,
        rule_name=rule.name if rule else NO_RULE_POLICY,
        quorum=rule.quorum if rule else 1,
        approval_valid_hours=rule.approval_valid_hours if rule else 24 * 90,
        decide_by_majority=rule.decide_by_majority if rule else False,
        opened_at=now,
        due_at=now + timedelta(hours=rule.sla_hours if rule else 72),
        **subject,
    )
    case._change_reason = why
    case.save()
    if case.status == CaseStatus.OPEN:
        _notify("notify_case_opened", case.pk)
    _notify("check_quorum_reach", case.pk)  # once its reports are linked: their submitters may not vote
    return case


def _notify(job_name: str, *args) -> None:
    """Enqueue a notification job (reviews.notifications) once the transaction commits."""

    def enqueue() -> None:
        from reviews import jobs

        jobs.enqueue(getattr(jobs, job_name), *args)

    transaction.on_commit(enqueue)


def _reopen(case: Case, *, quorum: int, why: str, revision: ReportRecord | None = None, actor: str = "") -> Case:
    """Put a case (already locked) back in front of the committee. A revision
    bumps the case's version (voiding the votes on the one before); an advisory
    case stays advisory."""
    changed = case.status != CaseStatus.OPEN or quorum > case.quorum or revision is not None
    if revision is not None:
        case.version += 1
        _void_votes(case, old_version=case.version - 1, why=why, actor=actor)
        case.severity = revision.severity
        case.title = f"Report {revision.id}"[:300]
        case.short_of_members = False
    if case.status != CaseStatus.OPEN and not (revision is not None and case.status == CaseStatus.ADVISORY):
        case.status = CaseStatus.OPEN
        case.decided_at = None
        case.decided_by = None
        case.approved_until = None
        case.due_at = timezone.now() + timedelta(hours=72)
    case.quorum = max(case.quorum, quorum)
    if changed:
        case._change_reason = why
        case.save()
        _notify("check_quorum_reach", case.pk)  # a higher quorum or a new version may not be reachable
    return case


# -------------------------------------------------------------------- the gate


class UnknownProposal(Exception):
    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"proposal_id: no report with id {proposal_id!r}")
        self.proposal_id = proposal_id


def decide_task(task: ExecutionTask) -> GateDecision:
    """The execution gate's decision on a task being registered.

    Called inside task_register's transaction (so a case it opens is rolled back
    with the task). Raises on anything it cannot decide; the caller fails closed.
    Cost when nothing is held: one query for the gate state, cached rules.
    """
    state = selectors.gate_state()
    if state.paused:
        return GateDecision("hold", f"the gate is paused: {state.reason}", PAUSE_POLICY, None)
    report = None
    if task.proposal_ref:
        report = selectors.report_by_id(task.proposal_ref)
        if report is None:
            raise UnknownProposal(task.proposal_ref)
        linked = _decision_from_report(report)
        if linked is not None:
            return linked
    subject = policy.Subject(
        task_type=task.task_type,
        ai_model=task.ai_model,
        customer=task.customer_ref,
        severity=report.severity if report else None,
        block_execution=report.block_execution if report else None,
        proposal=report.proposal if report else None,
        metric=(lambda kind, window: selectors.model_metric(task.ai_model, kind, window)) if task.ai_model else None,
    )
    matched = policy.first_match(policy.active_rules(state.rules_version), subject)
    if matched is None:
        return _hold_for_tasks(task, None, "no policy rule matched")
    rule, values = matched
    reason = rule.describe(values)
    if rule.action == Action.ALLOW:
        return GateDecision("allow", reason, rule.name, None)
    if rule.action == Action.DENY:
        return GateDecision("deny", reason, rule.name, None)
    return _hold_for_tasks(task, rule, reason)


def _decision_from_report(report: Report) -> GateDecision | None:
    """A task linked to a held or denied report is held or denied with it."""
    name = report.report_id
    if report.gate_decision == Action.DENY:
        return GateDecision("deny", f"its report {name} was denied: {report.gate_reason}", report.gate_policy, None)
    case = report.case
    if case is None or case.status == CaseStatus.ADVISORY:
        return None
    case_ref = str(case.pk)
    if case.status == CaseStatus.APPROVED:
        if case.approved_until is None or case.approved_until > timezone.now():
            return GateDecision("allow", f"its report {name} was approved (case {case.pk})", case.rule_name, case_ref)
    if case.status == CaseStatus.REJECTED:
        return GateDecision(
            "deny", f"its report {name} was rejected (case {case.pk}): {case.rationale}", case.rule_name, case_ref
        )
    if case.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):
        require_transaction()
        locked = Case.objects.select_for_update().get(pk=case.pk)
        _reopen(locked, quorum=locked.quorum, why=f"approval lapsed; task {name} needs a new decision")
    return GateDecision(
        "hold", f"its report {name} is waiting for the committee (case {case.pk})", case.rule_name, case_ref
    )


def _hold_for_tasks(task: ExecutionTask, rule: policy.Rule | None, reason: str) -> GateDecision:
    """One case per (rule, task type, AI model): join the waiting one, ride on a
    current approval, or open one."""
    require_transaction()  # the case's row lock, and the case it may open, commit with the task
    rule_name = rule.name if rule else NO_RULE_POLICY
    subject = {"task_type": task.task_type, "ai_model": task.ai_model or ""}
    latest = (
        Case.objects.select_for_update()
        .filter(kind=Case.Kind.TASKS, rule_name=rule_name, **subject)
        .order_by("-id")
        .first()
    )
    now = timezone.now()
    if latest is not None:
        if latest.status == CaseStatus.APPROVED and latest.approved_until and latest.approved_until > now:
            return GateDecision(
                "allow",
                f"{reason}; covered by the approval of case {latest.pk} "
                f"until {latest.approved_until:%Y-%m-%d %H:%M} UTC",
                rule_name,
                str(latest.pk),
            )
        if latest.status in WAITING_STATUSES:
            return GateDecision("hold", f"{reason}; waiting on case {latest.pk}", rule_name, str(latest.pk))
        if latest.status in (CaseStatus.APPROVED, CaseStatus.EXPIRED):
            _reopen(latest, quorum=latest.quorum, why=f"approval lapsed; task {task.external_id} needs a decision")
            return GateDecision("hold", f"{reason}; waiting on case {latest.pk}", rule_name, str(latest.pk))
    try:
        with transaction.atomic():
            case = _open_case(
                kind=Case.Kind.TASKS,
                status=CaseStatus.OPEN,
                title=f"{task.task_type} on {task.ai_model or 'any model'} ({rule_name})",
                rule=rule,
                now=now,
                why=f"task {task.external_id}: {reason}",
                **subject,
            )
    except IntegrityError:
        # Another registration opened the case a moment ago: join it.
        case = Case.objects.filter(
            kind=Case.Kind.TASKS, rule_name=rule_name, status__in=WAITING_STATUSES, **subject
        ).latest("id")
    return GateDecision("hold", f"{reason}; waiting on case {case.pk}", rule_name, str(case.pk))


def task_gate_details(task: ExecutionTask) -> dict:
    """Extra gate keys for the task API: the case's status and, once decided, its rationale."""
    if not task.gate_case:
        return {"case_status": None, "rationale": None}
    case = None
    if task.gate_case.isdigit():
        case = Case.objects.filter(pk=int(task.gate_case)).values("status", "rationale").first()
    if case is None:
        return {"case_status": None, "rationale": None}
    return {"case_status": case["status"], "rationale": case["rationale"] or None}


# ----------------------------------------------------------- deciding a case

DECISIONS = (CaseStatus.APPROVED, CaseStatus.REJECTED, CaseStatus.CHANGES_REQUESTED)


@transaction.atomic
def case_decide(*, case_id: int, decision: str, by, rationale: str) -> Case:
    """Decide a case: approve, reject or request changes, with a rationale.

    Approving releases, rejecting denies, every task waiting on the case, each
    exactly once (task_gate_update is compare-and-set under a row lock), in this
    transaction; callbacks go out after commit. Requesting changes keeps them held.
    """
    if decision not in DECISIONS:
        raise NotAllowed(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    if not rationale.strip():
        raise NotAllowed("a decision needs a written rationale", field="rationale")
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status not in (*WAITING_STATUSES, CaseStatus.ADVISORY, CaseStatus.EXPIRED):
        raise NotAllowed(f"case {case.pk} is {case.status}; it cannot be decided now")
    now = timezone.now()
    case.status = decision
    case.rationale = rationale.strip()
    case.decided_by = by
    case.decided_at = now
    # A policy change, once approved, stays applied until another change: its approval does not lapse.
    lapses = decision == CaseStatus.APPROVED and case.kind != Case.Kind.POLICY
    case.approved_until = now + timedelta(hours=case.approval_valid_hours) if lapses else None
    case._history_user = by
    case._change_reason = f"{decision}: {case.rationale}"
    case.save()
    _chain(
        f"case.{decision}",
        case=case,
        by=by,
        version=case.version,
        rationale=case.rationale,
        approved_until=case.approved_until.isoformat() if case.approved_until else None,
    )
    _notify("notify_decision", case.pk, decision, case.version)
    if case.kind == Case.Kind.POLICY:
        _policy_case_decided(case, decision=decision, by=by)
        return case
    if decision == CaseStatus.CHANGES_REQUESTED:
        waiting = list(selectors.held_tasks_for_case(case.pk))
        _queue_callbacks(waiting, CallbackDelivery.Type.CHANGES_REQUESTED, case=case)
        return case
    gate = GateDecision(
        "allow" if decision == CaseStatus.APPROVED else "deny",
        f"case {case.pk} {decision} by {by}: {case.rationale}",
        case.rule_name,
        str(case.pk),
    )
    actor = Actor(user=by)
    changed = []
    for task_id in selectors.held_tasks_for_case(case.pk).values_list("pk", flat=True):
        task = task_gate_update(task_id=task_id, decision=gate, actor=actor, reason=f"case {case.pk} {decision}")
        if task is not None:
            changed.append(task)
    kind = CallbackDelivery.Type.RELEASED if decision == CaseStatus.APPROVED else CallbackDelivery.Type.DENIED
    _queue_callbacks(changed, kind, case=case)
    return case


@transaction.atomic
def case_escalate(*, case_id: int, by, reason: str) -> Case:
    """Turn an advisory case into a hold: later tasks on its report wait for a decision."""
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status != CaseStatus.ADVISORY:
        raise NotAllowed(f"only an advisory case can be escalated; case {case.pk} is {case.status}")
    case.status = CaseStatus.OPEN
    case.due_at = timezone.now() + timedelta(hours=72)
    case._history_user = by
    case._change_reason = f"escalated to a hold: {reason}"
    case.save()
    _chain("case.escalated", case=case, by=by, reason=reason)
    _notify("notify_case_opened", case.pk)
    return case


def cases_expire(*, now=None) -> int:
    """Approved cases whose approval period has passed become `expired`. Safe to run twice."""
    now = now or timezone.now()
    expired = 0
    due = Case.objects.filter(status=CaseStatus.APPROVED, approved_until__lte=now).values_list("pk", flat=True)
    for case_id in list(due):
        with transaction.atomic():
            case = Case.objects.select_for_update().get(pk=case_id)
            if case.status != CaseStatus.APPROVED or case.approved_until is None or case.approved_until > now:
                continue
            case.status = CaseStatus.EXPIRED
            case.version += 1  # continuing review: the old approvals do not count again
            case._change_reason = "approval lapsed; back in the queue for continuing review"
            case.save()
            _chain("case.expired", case=case, version=case.version, approved_until=case.approved_until.isoformat())
            _void_votes(case, old_version=case.version - 1, why="approval lapsed: continuing review")
            expired += 1
    return expired


# ------------------------------------------------------------ the kill switch


@transaction.atomic
def gate_pause(*, by, reason: str) -> GateState:
    """Pause the gate: every new task is held, and running tasks get a `stop` callback."""
    if not reason.strip():
        raise NotAllowed("pausing the gate needs a reason", field="reason")
    selectors.gate_state()
    state = GateState.objects.select_for_update().get(pk=1)
    if state.paused:
        raise NotAllowed("the gate is already paused")
    state.paused = True
    state.reason = reason.strip()
    state.changed_at = timezone.now()
    state.changed_by = by
    state._history_user = by
    state._change_reason = f"paused: {state.reason}"
    state.save()
    _chain("gate.paused", subject="gate", by=by, reason=state.reason)
    running = list(ExecutionTask.objects.filter(status=TaskStatus.RUNNING, submitted_by__callback__enabled=True))
    _queue_callbacks(running, CallbackDelivery.Type.STOP, case=None, reason=state.reason)
    return state


@transaction.atomic
def gate_resume(*, by, reason: str) -> GateState:
    """Resume the gate; tasks held only by the pause are decided again (by a job)."""
    if not reason.strip():
        raise NotAllowed("resuming the gate needs a reason", field="reason")
    selectors.gate_state()
    state = GateState.objects.select_for_update().get(pk=1)
    if not state.paused:
        raise NotAllowed("the gate is not paused")
    state.paused = False
    state.reason = reason.strip()
    state.changed_at = timezone.now()
    state.changed_by = by
    state._history_user = by
    state._change_reason = f"resumed: {state.reason}"
    state.save()
    _chain("gate.resumed", subject="gate", by=by, reason=state.reason)
    from reviews import jobs

    transaction.on_commit(lambda: jobs.enqueue(jobs.redecide_paused_tasks))
    return state


@transaction.atomic
def review_settings_set(*, by, require_totp: bool, reason: str) -> ReviewSettings:
    """Change the operators' review settings: the row's history and an audit-chain
    entry (`review_settings.changed`, with `{field: [before, after]}`) record who,
    what and why. A save that changes nothing is refused, so every entry is a change."""
    reason = reason.strip()
    if not reason:
        raise NotAllowed("changing the review settings needs a reason", field="reason")
    selectors.review_settings()
    row = ReviewSettings.objects.select_for_update().get(pk=1)
    if row.require_totp == require_totp:
        raise NotAllowed("nothing changed: two-factor is already " + ("required" if require_totp else "optional"))
    diff = {"require_totp": [row.require_totp, require_totp]}
    row.require_totp = require_totp
    row.reason = reason
    row.changed_at = timezone.now()
    row.changed_by = by
    row._history_user = by
    row._change_reason = f"two-factor {'required' if require_totp else 'optional'}: {reason}"
    row.save()
    _chain("review_settings.changed", subject="review_settings", by=by, diff=diff, reason=reason)
    return row


def redecide_paused_tasks() -> int:
    """Give every task held only by the pause the gate's current decision. Safe
    to run twice: a task is changed only while still held by the pause."""
    changed = 0
    if selectors.gate_state().paused:
        return 0
    ids = list(
        ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_policy=PAUSE_POLICY).values_list("pk", flat=True)
    )
    for task_id in ids:
        with transaction.atomic():
            task = ExecutionTask.objects.select_for_update().get(pk=task_id)
            if task.status != TaskStatus.HELD or task.gate_policy != PAUSE_POLICY:
                continue
            decision = decide_task(task)
            updated = task_gate_update(
                task_id=task_id, decision=decision, actor=Actor.system(), reason=f"gate resumed: {decision.decision}"
            )
            if updated is not None and decision.decision != "hold":
                kind = CallbackDelivery.Type.RELEASED if decision.decision == "allow" else CallbackDelivery.Type.DENIED
                _queue_callbacks([updated], kind, case=None)
                changed += 1
    return changed


@transaction.atomic
def rules_changed(*, why: str = "") -> None:
    """Bump the rules version so every process reloads its cached rules."""
    selectors.gate_state()
    GateState.objects.filter(pk=1).update(rules_version=new_rules_version())


def validate_rule(rule: PolicyRule) -> None:
    """Raise policy.BrokenRule when a rule could not be evaluated (used by the admin form)."""
    policy.Rule.from_model(rule)


# ------------------------------------------------------------------- callbacks

CALLBACK_BACKOFF_SECONDS = (10, 30, 120, 600, 1800, 3600)
CALLBACK_MAX_ATTEMPTS = len(CALLBACK_BACKOFF_SECONDS) + 1


def _case_json(case: Case | None) -> dict | None:
    if case is None:
        return None
    return {
        "id": case.pk,
        "status": case.status,
        "rationale": case.rationale or None,
        "url": reverse("reviews:case", args=[case.pk]),
    }


def _queue_callbacks(tasks: list[ExecutionTask], kind: str, *, case: Case | None, reason: str = "") -> None:
    """Record one delivery per task whose API key has a callback; enqueue after commit."""
    key_ids = {t.submitted_by_id for t in tasks if t.submitted_by_id}
    if not key_ids:
        return
    endpoints = {e.api_key_id: e for e in CallbackEndpoint.objects.filter(api_key_id__in=key_ids, enabled=True)}
    deliveries = []
    for task in tasks:
        endpoint = endpoints.get(task.submitted_by_id)
        if endpoint is None:
            continue
        delivery = CallbackDelivery(endpoint=endpoint, type=kind, task_id=task.pk, payload={})
        delivery.payload = {
            "event_id": str(delivery.event_id),
            "type": kind,
            "task": {"id": task.pk, "external_id": task.external_id, "status": task.status},
            "case": _case_json(case),
            "decision": {
                "decision": task.gate_decision,
                "reason": reason or task.gate_reason,
                "policy": task.gate_policy,
            },
        }
        deliveries.append(delivery)
    CallbackDelivery.objects.bulk_create(deliveries)
    if deliveries:
        from reviews import jobs

        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: [jobs.enqueue(jobs.deliver_callback, i) for i in ids])


@transaction.atomic
def callback_endpoint_set(*, api_key_id: int, url: str, secret: str, by) -> CallbackEndpoint:
    endpoint, _ = CallbackEndpoint.objects.select_for_update().get_or_create(
        api_key_id=api_key_id, defaults={"url": url, "secret": secret}
    )
    endpoint.url = url
    endpoint.secret = secret
    endpoint.enabled = True
    endpoint._history_user = by
    endpoint._change_reason = "callback set"
    endpoint.save()
    return endpoint


def callback_record_attempt(*, delivery_id: int, ok: bool, status_code: int | None, error: str) -> CallbackDelivery:
    """Record one delivery attempt (compare-and-set on `pending`); schedules the next try with backoff."""
    with transaction.atomic():
        delivery = CallbackDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != CallbackDelivery.Status.PENDING:
            return delivery
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_status_code = status_code
        if ok:
            delivery.status = CallbackDelivery.Status.DELIVERED
            delivery.delivered_at = now
            delivery.last_error = ""
        else:
            delivery.last_error = error[:2000]
            if delivery.attempts >= CALLBACK_MAX_ATTEMPTS:
                delivery.status = CallbackDelivery.Status.FAILED
            else:
                delivery.next_attempt_at = now + timedelta(seconds=CALLBACK_BACKOFF_SECONDS[delivery.attempts - 1])
        delivery.save()
        return delivery


@transaction.atomic
def callback_retry(*, delivery_id: int, by) -> CallbackDelivery:
    """An operator retries a failed delivery: it goes back to pending, due now."""
    delivery = CallbackDelivery.objects.select_for_update().get(pk=delivery_id)
    if delivery.status == CallbackDelivery.Status.DELIVERED:
        raise NotAllowed("this callback was already delivered")
    delivery.status = CallbackDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.save()
    from reviews import jobs

    transaction.on_commit(lambda: jobs.enqueue(jobs.deliver_callback, delivery.pk))
    logger.info("Callback %s retried by %s", delivery.event_id, by)
    return delivery


# ------------------------------------------------------------- the committee

MIN_RATIONALE_CHARS = 15
MIN_RATIONALE_WORDS = 3
VOTABLE_STATUSES = (CaseStatus.OPEN, CaseStatus.EXPIRED, CaseStatus.ADVISORY)


def check_rationale(text: str, *, field: str = "rationale") -> str:
    """A written reason a person can act on: not empty, not one word."""
    text = (text or "").strip()
    if len(text) < MIN_RATIONALE_CHARS or len(text.split()) < MIN_RATIONALE_WORDS:
        raise NotAllowed(
            f"write a rationale of at least {MIN_RATIONALE_WORDS} words and {MIN_RATIONALE_CHARS} characters",
            field=field,
        )
    return text


def committee_members():
    from django.contrib.auth import get_user_model

    from core.roles import COMMITTEE

    return get_user_model().objects.filter(is_active=True, groups__name=COMMITTEE)


def submitters(case: Case) -> set[int]:
    """Users who submitted what the case is about: uploaders, and owners of the API keys that sent it."""
    ids: set[int] = set()
    if case.kind == Case.Kind.POLICY:
        ids.update(PolicyChange.objects.filter(case=case).values_list("proposed_by_id", flat=True))
        return ids
    for uploaded_by, key_owner in case.reports.values_list("uploaded_by_id", "submitted_by__owner_id"):
        ids.update(i for i in (uploaded_by, key_owner) if i is not None)
    return ids


def eligible_member_ids(case: Case) -> set[int]:
    members = set(committee_members().values_list("pk", flat=True))
    recused = set(case.recusals.values_list("member_id", flat=True))
    return members - recused - submitters(case)


def why_cannot_vote(case: Case, member) -> str | None:
    """None when `member` may vote on the case's current version, else the reason."""
    if not committee_members().filter(pk=member.pk).exists():
        return "only ethics committee members vote"
    if case.status == CaseStatus.CHANGES_REQUESTED:
        if case.kind == Case.Kind.POLICY:
            return "changes were requested; the change must be proposed again"
        return "changes were requested; votes resume on the revision"
    if case.status not in VOTABLE_STATUSES:
        return f"the case is {case.get_status_display().lower()}"
    if member.pk in submitters(case):
        return "you submitted what this case is about"
    if case.recusals.filter(member=member).exists():
        return "you recused yourself from this case"
    if case.votes.filter(case_version=case.version, member=member).exists():
        return "you already voted on this version"
    return None


@transaction.atomic
def vote_cast(*, case_id: int, member, choice: str, rationale: str):
    """Record a member's vote on the case's current version, then apply the
    decision rules: any reject (or, by policy, a majority of eligible members
    rejecting) rejects; a request for changes sets `changes_requested` and waits
    for a revision; the quorum of approvals approves. The case row is locked, so
    two members voting at once are both recorded and exactly one decision is made.
    """
    from reviews.models import Vote

    if choice not in Vote.Choice.values:
        raise NotAllowed(f"choice must be one of {', '.join(Vote.Choice.values)}", field="choice")
    rationale = check_rationale(rationale)
    case = Case.objects.select_for_update().get(pk=case_id)
    reason = why_cannot_vote(case, member)
    if reason:
        raise NotAllowed(f"You cannot vote: {reason}.")
    vote = Vote(case=case, case_version=case.version, member=member, choice=choice, rationale=rationale)
    vote._history_user = member
    vote._change_reason = f"voted {choice} on version {case.version}"
    vote.save()
    _chain("vote.cast", case=case, by=member, vote=vote.pk, version=case.version, choice=choice, rationale=rationale)
    _tally(case, by=member)
    return vote


def _tally(case: Case, *, by) -> None:
    from reviews.models import Vote

    votes = list(case.votes.filter(case_version=case.version).select_related("member"))
    eligible = eligible_member_ids(case)
    approvals = [v for v in votes if v.choice == Vote.Choice.APPROVE and v.member_id in eligible]
    rejects = [v for v in votes if v.choice == Vote.Choice.REJECT]
    changes = [v for v in votes if v.choice == Vote.Choice.REQUEST_CHANGES]

    def summary(chosen) -> str:
        return " | ".join(f"{v.member}: {v.rationale}" for v in chosen)

    if rejects and (not case.decide_by_majority or len(rejects) * 2 > len(eligible)):
        case_decide(case_id=case.pk, decision=CaseStatus.REJECTED, by=by, rationale=summary(rejects))
    elif changes and votes[-1].choice == Vote.Choice.REQUEST_CHANGES:
        case_decide(case_id=case.pk, decision=CaseStatus.CHANGES_REQUESTED, by=by, rationale=summary(changes))
    elif len(approvals) >= case.quorum:
        case_decide(case_id=case.pk, decision=CaseStatus.APPROVED, by=by, rationale=summary(approvals))


@transaction.atomic
def recuse(*, case_id: int, member, reason: str):
    """A member steps aside from a case, with a reason. When recusals leave fewer
    eligible members than the quorum, the case is flagged for operators."""
    from reviews.models import Recusal

    reason = check_rationale(reason, field="reason")
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.recusals.filter(member=member).exists():
        raise NotAllowed("You already recused yourself from this case.")
    if case.votes.filter(case_version=case.version, member=member).exists():
        raise NotAllowed("You already voted on this version; you cannot recuse now.")
    recusal = Recusal(case=case, member=member, reason=reason)
    recusal._history_user = member
    recusal._change_reason = "recused"
    recusal.save()
    _chain("case.recused", case=case, by=member, recusal=recusal.pk, version=case.version, reason=reason)
    _check_short_of_members(case, by=member)
    return recusal


def _check_short_of_members(case: Case, *, by=None) -> None:
    short = len(eligible_member_ids(case)) < case.quorum
    if short != case.short_of_members:
        case.short_of_members = short
        case._history_user = by
        case._change_reason = (
            "fewer eligible members than the quorum: operators alerted" if short else "enough eligible members again"
        )
        case.save()
        if short:
            logger.warning("Case %s cannot reach its quorum of %s: too few eligible members", case.pk, case.quorum)
            _notify("notify_quorum_impossible", case.pk)


def case_check_quorum_reach(*, case_id: int) -> None:
    """Flag (or unflag) one case whose eligible members cannot reach its quorum."""
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id, status__in=QUEUE_STATUSES).first()
        if case is not None:
            _check_short_of_members(case)


def recheck_short_of_members() -> int:
    """Re-flag every case in the queue after the committee changed (a member added,
    removed or deactivated): eligible members are the committee less the case's
    recusals and submitters. A few queries for the whole queue; only cases whose
    flag changes are locked and saved (operators are alerted as on a recusal).
    Returns how many flags changed."""
    from reviews.models import Recusal

    members = set(committee_members().values_list("pk", flat=True))
    in_queue = {"case__status__in": QUEUE_STATUSES}
    excluded: dict[int, set[int]] = {}
    for case_id, member_id in Recusal.objects.filter(**in_queue).values_list("case_id", "member_id"):
        excluded.setdefault(case_id, set()).add(member_id)
    for case_id, *people in Report.objects.filter(**in_queue).values_list(
        "case_id", "uploaded_by_id", "submitted_by__owner_id"
    ):
        excluded.setdefault(case_id, set()).update(p for p in people if p is not None)
    for case_id, proposer in PolicyChange.objects.filter(**in_queue).values_list("case_id", "proposed_by_id"):
        excluded.setdefault(case_id, set()).add(proposer)
    changed = 0
    for case_id, quorum, short in Case.objects.filter(status__in=QUEUE_STATUSES).values_list(
        "pk", "quorum", "short_of_members"
    ):
        if (len(members - excluded.get(case_id, set())) < quorum) != short:
            case_check_quorum_reach(case_id=case_id)
            changed += 1
    return changed


@transaction.atomic
def comment_add(*, case_id: int, author, text: str):
    from reviews.models import Comment

    text = (text or "").strip()
    if not text:
        raise NotAllowed("a comment cannot be empty", field="text")
    case = Case.objects.get(pk=case_id)
    comment = Comment(case=case, author=author, text=text[:10_000])
    comment._history_user = author
    comment._change_reason = "commented"
    comment.save()
    return comment


def claim_minutes() -> int:
    from django.conf import settings

    return getattr(settings, "REVIEWS_CLAIM_MINUTES", 60)


@transaction.atomic
def case_claim(*, case_id: int, member) -> Case:
    """Say that `member` is working on the case, until the claim expires. Others may still vote."""
    case = Case.objects.select_for_update().get(pk=case_id)
    now = timezone.now()
    if case.claimed_by_id and case.claimed_by_id != member.pk and case.claimed_until and case.claimed_until > now:
        raise NotAllowed(f"{case.claimed_by} is working on this case until {case.claimed_until:%H:%M} UTC.")
    case.claimed_by = member
    case.claimed_until = now + timedelta(minutes=claim_minutes())
    case._history_user = member
    case._change_reason = "claimed"
    case.save()
    return case


@transaction.atomic
def case_release(*, case_id: int, member) -> Case:
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.claimed_by_id == member.pk:
        case.claimed_by = None
        case.claimed_until = None
        case._history_user = member
        case._change_reason = "released the claim"
        case.save()
    return case


@transaction.atomic
def case_revoke(*, case_id: int, by, rationale: str) -> Case:
    """Revoke an approval: the case reopens (earlier votes void), the gate holds
    again at once, and running tasks approved through it get a `stop` callback."""
    from core.roles import COMMITTEE, has_role

    rationale = check_rationale(rationale)
    if not has_role(by, COMMITTEE):
        raise NotAllowed("only ethics committee members revoke approvals")
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status != CaseStatus.APPROVED:
        raise NotAllowed(f"only an approved case can be revoked; case {case.pk} is {case.status}")
    if case.kind == Case.Kind.POLICY:
        raise NotAllowed("an applied policy change is undone by proposing another change, not by revoking")
    case.status = CaseStatus.OPEN
    case.version += 1
    case.approved_until = None
    case.decided_at = None
    case.decided_by = None
    case.rationale = ""
    case.due_at = timezone.now() + timedelta(hours=72)
    case._history_user = by
    case._change_reason = f"approval revoked: {rationale}"
    case.save()
    _chain("case.revoked", case=case, by=by, version=case.version, rationale=rationale)
    _void_votes(case, old_version=case.version - 1, why=f"approval revoked: {rationale}", by=by)
    running = list(ExecutionTask.objects.filter(status=TaskStatus.RUNNING, gate_case=str(case.pk)))
    _queue_callbacks(running, CallbackDelivery.Type.STOP, case=case, reason=f"approval revoked: {rationale}")
    return case


# ------------------------------------------------------------ policy changes

POLICY_FIELDS = tuple(f.name for f in PolicyRule._meta.concrete_fields if f.name != "id")


def rule_values(rule: PolicyRule) -> dict:
    """A rule's values as stored in a PolicyChange (JSON round-tripped, so they compare equal later)."""
    import json

    return json.loads(json.dumps({name: getattr(rule, name) for name in POLICY_FIELDS}))


def policy_change_quorum() -> int:
    from django.conf import settings

    return getattr(settings, "REVIEWS_POLICY_CHANGE_QUORUM", 2)


def _prepare_policy_change(*, operation: str, rule_id: int | None, values: dict | None):
    """Lock the rule and work out (rule, operation, before, proposed, diff); raise NotAllowed
    for a change that could not be applied (unknown fields, a rule the gate could not
    evaluate, a duplicate name, or nothing that would change)."""
    import json

    values = dict(values or {})
    unknown = sorted(set(values) - set(POLICY_FIELDS))
    if unknown:
        raise NotAllowed(f"unknown rule fields: {', '.join(unknown)}", field=unknown[0])
    if operation not in PolicyChange.Operation.values:
        raise NotAllowed(f"operation must be one of {', '.join(PolicyChange.Operation.values)}", field="operation")
    rule = None
    if operation == PolicyChange.Operation.CREATE:
        before: dict = {}
        proposed = {**rule_values(PolicyRule()), **values}
    else:
        rule = PolicyRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise NotAllowed(f"no policy rule with id {rule_id}", field="rule")
        before = rule_values(rule)
        if operation == PolicyChange.Operation.CHANGE:
            proposed = {**before, **values}
        elif operation == PolicyChange.Operation.DISABLE:
            proposed = {**before, "enabled": False}
        else:
            proposed = {}
    proposed = json.loads(json.dumps(proposed, default=str))
    if proposed:
        from django.core.exceptions import ValidationError

        candidate = PolicyRule(**proposed)
        try:
            candidate.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            field, problems = next(iter(exc.message_dict.items()))
            raise NotAllowed(f"{field}: {' '.join(problems)}", field=field) from None
        candidate.pk = rule.pk if rule else 0
        try:
            policy.Rule.from_model(candidate)
        except policy.BrokenRule as exc:
            raise NotAllowed(str(exc)) from None
        if PolicyRule.objects.filter(name=proposed["name"]).exclude(pk=rule.pk if rule else None).exists():
            raise NotAllowed(f"a rule named {proposed['name']!r} already exists", field="name")
    diff = {k: [before.get(k), proposed.get(k)] for k in POLICY_FIELDS if before.get(k) != proposed.get(k)}
    if not diff:
        raise NotAllowed("this would change nothing")
    if operation == PolicyChange.Operation.CHANGE and set(diff) == {"enabled"} and proposed["enabled"] is False:
        operation = PolicyChange.Operation.DISABLE
    name = (rule.name if rule else proposed["name"])[:100]
    return rule, operation, before, proposed, diff, name


def _policy_case(*, title: str, rule: PolicyRule | None, name: str, now, why: str) -> Case:
    from django.conf import settings

    case = Case(
        kind=Case.Kind.POLICY,
        status=CaseStatus.OPEN,
        title=title[:300],
        rule=rule,
        rule_name=name,
        quorum=policy_change_quorum(),
        opened_at=now,
        due_at=now + timedelta(hours=getattr(settings, "REVIEWS_POLICY_CHANGE_SLA_HOURS", 72)),
    )
    case._change_reason = why
    case.save()
    _notify("notify_case_opened", case.pk)
    return case


@transaction.atomic
def policy_change_propose(
    *, by, operation: str, reason: str, rule_id: int | None = None, values: dict | None = None
) -> PolicyChange:
    """Propose creating, changing, disabling or deleting a policy rule. Nothing
    changes in the rules the gate reads until the committee approves the change's
    case (quorum `REVIEWS_POLICY_CHANGE_QUORUM`, default 2; the proposer cannot
    vote on it). One pending change per rule."""
    reason = check_rationale(reason, field="reason")
    rule, operation, before, proposed, diff, name = _prepare_policy_change(
        operation=operation, rule_id=rule_id, values=values
    )
    pending = PolicyChange.objects.filter(status=PolicyChange.Status.PENDING)
    clash = pending.filter(rule=rule).first() if rule else pending.filter(rule__isnull=True, rule_name=name).first()
    if clash is not None:
        raise NotAllowed(f"rule {name!r} already has a pending change (case {clash.case_id}); decide that one first")
    now = timezone.now()
    case = _policy_case(
        title=f"Policy change: {operation} rule {name}", rule=rule, name=name, now=now, why=f"proposed by {by}"
    )
    return _record_policy_change(
        emergency=False, case=case, by=by, now=now, operation=operation, rule=rule, name=name,
        before=before, proposed=proposed, diff=diff, reason=reason,
    )  # fmt: skip


@transaction.atomic
def policy_change_emergency(
    *, by, operation: str, reason: str, rule_id: int | None = None, values: dict | None = None
) -> PolicyChange:
    """A superuser's emergency change: applied at once, with a retrospective case
    opened for the committee. Pending changes to the same rule are superseded
    (their cases closed as rejected), since they were proposed against values
    that no longer hold."""
    if not getattr(by, "is_superuser", False):
        raise NotAllowed("only a superuser can make an emergency policy change")
    reason = check_rationale(reason, field="reason")
    rule, operation, before, proposed, diff, name = _prepare_policy_change(
        operation=operation, rule_id=rule_id, values=values
    )
    now = timezone.now()
    pending = PolicyChange.objects.select_for_update().filter(status=PolicyChange.Status.PENDING)
    pending = pending.filter(rule=rule) if rule else pending.filter(rule__isnull=True, rule_name=name)
    for old in pending:
        _supersede(old, by=by, now=now)
    case = _policy_case(
        title=f"Retrospective review: emergency {operation} of rule {name}",
        rule=rule,
        name=name,
        now=now,
        why=f"emergency change by {by}: review in retrospect",
    )
    change = _record_policy_change(
        emergency=True, case=case, by=by, now=now, operation=operation, rule=rule, name=name,
        before=before, proposed=proposed, diff=diff, reason=reason,
    )  # fmt: skip
    _apply_policy_change(change, rule=rule, by=by)
    return change


def _record_policy_change(
    *, emergency: bool, case: Case, by, now, operation, rule, name, before, proposed, diff, reason
) -> PolicyChange:
    """Store a proposed (or emergency) policy change under its case, with history and on the chain."""
    change = PolicyChange(
        operation=operation,
        rule=rule,
        rule_name=name,
        before=before,
        proposed=proposed,
        diff=diff,
        reason=reason,
        emergency=emergency,
        proposed_by=by,
        proposed_at=now,
        case=case,
    )
    change._history_user = by
    change._change_reason = f"{'emergency' if emergency else 'proposed'}: {reason}"
    change.save()
    _check_short_of_members(case)  # a proposer on a small committee may leave too few voters
    _chain(
        "policy.emergency" if emergency else "policy.proposed",
        subject=f"policy_change:{change.pk}",
        by=by,
        case=case.pk,
        operation=operation,
        rule=name,
        rule_id=rule.pk if rule else None,
        diff=diff,
        reason=reason,
    )
    return change


def _supersede(change: PolicyChange, *, by, now) -> None:
    change.status = PolicyChange.Status.SUPERSEDED
    change._history_user = by
    change._change_reason = "superseded by an emergency change"
    change.save()
    case = Case.objects.select_for_update().get(pk=change.case_id)
    if case.status in WAITING_STATUSES:
        case.status = CaseStatus.REJECTED
        case.rationale = "superseded by an emergency change to the same rule"
        case.decided_at = now
        case.decided_by = by
        case._history_user = by
        case._change_reason = "superseded by an emergency change"
        case.save()
    _chain("policy.superseded", subject=f"policy_change:{change.pk}", by=by, case=case.pk, rule=change.rule_name)


def _apply_policy_change(change: PolicyChange, *, rule: PolicyRule | None, by) -> PolicyRule | None:
    """Write the change to the rules the gate reads (already locked by the caller), with
    history, and bump the rules version so every process reloads its cached rules."""
    why = f"policy change {change.pk} ({'emergency' if change.emergency else f'case {change.case_id}'})"
    if change.operation == PolicyChange.Operation.DELETE:
        rule._history_user = by
        rule._change_reason = why
        rule.delete()
        rule = None
        change.rule = None
    else:
        rule = rule or PolicyRule()
        for name, value in change.proposed.items():
            setattr(rule, name, value)
        rule._history_user = by
        rule._change_reason = why
        rule.save()
        change.rule = rule
    change.status = PolicyChange.Status.APPLIED
    change.applied_at = timezone.now()
    change._history_user = by
    change._change_reason = "applied"
    change.save()
    rules_changed()
    _chain(
        "policy.applied",
        subject=f"policy_change:{change.pk}",
        by=by,
        case=change.case_id,
        operation=change.operation,
        rule=change.rule_name,
        rule_id=rule.pk if rule else None,
        values=change.proposed,
        emergency=change.emergency,
    )
    return rule


def _policy_case_decided(case: Case, *, decision: str, by) -> None:
    """The committee decided a policy change's case: apply it, or close it unapplied.
    A retrospective case (emergency change) only records the committee's verdict;
    undoing an emergency change is a new proposal."""
    change = PolicyChange.objects.select_for_update().get(case=case)
    if change.emergency:
        _chain("policy.reviewed", subject=f"policy_change:{change.pk}", by=by, case=case.pk, decision=decision)
        return
    if change.status != PolicyChange.Status.PENDING:
        raise NotAllowed(f"policy change {change.pk} is {change.status}")
    if decision == CaseStatus.APPROVED:
        rule = None
        if change.operation != PolicyChange.Operation.CREATE:
            rule = PolicyRule.objects.select_for_update().filter(pk=change.rule_id).first()
            if rule is None or rule_values(rule) != change.before:
                raise NotAllowed(
                    f"rule {change.rule_name!r} changed since this was proposed; reject this and propose again"
                )
        elif PolicyRule.objects.filter(name=change.proposed["name"]).exists():
            raise NotAllowed(f"a rule named {change.proposed['name']!r} exists now; reject this and propose again")
        _apply_policy_change(change, rule=rule, by=by)
        return
    change.status = (
        PolicyChange.Status.REJECTED if decision == CaseStatus.REJECTED else PolicyChange.Status.CHANGES_REQUESTED
    )
    change._history_user = by
    change._change_reason = f"{decision}: {case.rationale}"
    change.save()
    _chain(f"policy.{change.status}", subject=f"policy_change:{change.pk}", by=by, case=case.pk)


# ------------------------------------------------------------- notifications


@transaction.atomic
def notification_preference_set(*, user, case_opened: bool, sla_reminders: bool):
    """Turn the non-essential mails on or off for one person."""
    from reviews.models import NotificationPreference

    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, defaults={"case_opened": case_opened, "sla_reminders": sla_reminders}
    )
    return preference
