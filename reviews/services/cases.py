"""Deciding a case: approve, reject or request changes (releasing or denying the
tasks waiting on it), escalate an advisory case, expire lapsed approvals, and
revoke an approval.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from reviews import selectors, subjects
from reviews.models import (
    WAITING_STATUSES,
    CallbackDelivery,
    Case,
    CaseStatus,
)
from reviews.services.callbacks import STOPPABLE, task_callbacks_queue
from reviews.services.common import _chain, _notify, _void_votes, check_rationale, due_again
from reviews.services.errors import NotAllowed
from reviews.services.policy_changes import _policy_case_decided
from reviews.signals import send_case_changed
from tasks.gate import GateDecision, GateUnavailable, ask_gate
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_gate_update

DECISIONS = (CaseStatus.APPROVED, CaseStatus.REJECTED, CaseStatus.CHANGES_REQUESTED)


@transaction.atomic
def case_decide(*, case_id: int, decision: str, by, rationale: str) -> Case:
    """Decide a case: approve, reject or request changes, with a rationale.

    Approving releases, rejecting denies, every task waiting on the case, each
    exactly once (task_gate_update is compare-and-set under a row lock), in this
    transaction; callbacks go out after commit. Requesting changes keeps them held.

    A case of a kind an upper app registered (reviews.subjects) is approved only
    if its approval guards allow it, and is never sent back for changes; its
    `case_changed` receivers run before its held tasks are decided again by the
    whole gate (they were held by the subject alone: the rest of the policy
    still applies to them).
    """
    if decision not in DECISIONS:
        raise NotAllowed(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    if not rationale.strip():
        raise NotAllowed("a decision needs a written rationale", field="rationale")
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status not in (*WAITING_STATUSES, CaseStatus.ADVISORY, CaseStatus.EXPIRED):
        raise NotAllowed(f"case {case.pk} is {case.status}; it cannot be decided now")
    refused = subjects.refused_choices(case).get(
        {CaseStatus.APPROVED: "approve", CaseStatus.CHANGES_REQUESTED: "request_changes"}.get(decision, "")
    )
    if refused:
        raise NotAllowed(f"case {case.pk} cannot be {decision.replace('_', ' ')}: {refused}")
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
    send_case_changed(case, decision, by=by)
    if case.kind == Case.Kind.POLICY:
        _policy_case_decided(case, decision=decision, by=by)
        return case
    if decision == CaseStatus.CHANGES_REQUESTED:
        waiting = list(selectors.held_tasks_for_case(case.pk))
        task_callbacks_queue(waiting, CallbackDelivery.Type.CHANGES_REQUESTED, case=case)
        return case
    if decision == CaseStatus.APPROVED and subjects.is_subject_kind(case.kind):
        _decide_held_tasks_again(case, by=by)
        return case
    if decision == CaseStatus.APPROVED and selectors.case_is_honeypot(case):
        # A honeypot's approval releases nothing (no task can name it: selectors.report_for_client);
        # anything waiting on it stays held, and the AI side hears nothing.
        return case
    gate = GateDecision(
        "allow" if decision == CaseStatus.APPROVED else "deny",
        f"case {case.pk} {decision} by {by}: {case.rationale}",
        case.rule_name,
        case.pk,
    )
    actor = Actor(user=by)
    changed = []
    for task_id in selectors.held_tasks_for_case(case.pk).values_list("pk", flat=True):
        task = task_gate_update(task_id=task_id, decision=gate, actor=actor, reason=f"case {case.pk} {decision}")
        if task is not None:
            changed.append(task)
    kind = CallbackDelivery.Type.RELEASED if decision == CaseStatus.APPROVED else CallbackDelivery.Type.DENIED
    task_callbacks_queue(changed, kind, case=case)
    return case


def _decide_held_tasks_again(case: Case, *, by) -> None:
    """The subject a task was held on is approved: the whole gate decides on the
    task again (settings.TASK_GATE), each task under its row lock and only while
    still held, so each is released, denied or held elsewhere exactly once. An
    allow keeps the approving case as the task's case."""
    actor = Actor(user=by)
    released, denied = [], []
    for task_id in selectors.held_tasks_for_case(case.pk).values_list("pk", flat=True):
        task = ExecutionTask.objects.select_for_update().get(pk=task_id)
        if task.status != TaskStatus.HELD or task.gate_case != str(case.pk):
            continue
        try:
            decision = ask_gate(task)
        except GateUnavailable as exc:
            raise NotAllowed(
                f"the gate cannot decide on held task {task.external_id} right now ({exc}); nothing was recorded, "
                "try again"
            ) from exc
        if decision.decision == "allow" and decision.case is None:
            reason = f"case {case.pk} approved by {by}: {case.rationale}; then {decision.reason}"
            decision = GateDecision("allow", reason, decision.policy, str(case.pk))
        updated = task_gate_update(
            task_id=task_id, decision=decision, actor=actor, reason=f"case {case.pk} approved: {decision.decision}"
        )
        if updated is not None and decision.decision != "hold":
            (released if decision.decision == "allow" else denied).append(updated)
    task_callbacks_queue(released, CallbackDelivery.Type.RELEASED, case=case)
    task_callbacks_queue(denied, CallbackDelivery.Type.DENIED, case=case)


@transaction.atomic
def case_escalate(*, case_id: int, by, reason: str) -> Case:
    """Turn an advisory case into a hold: later tasks on its report wait for a decision."""
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status != CaseStatus.ADVISORY:
        raise NotAllowed(f"only an advisory case can be escalated; case {case.pk} is {case.status}")
    case.status = CaseStatus.OPEN
    case.due_at = due_again(case)
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
            send_case_changed(case, "expired")
            expired += 1
    return expired


@transaction.atomic
def case_revoke(*, case_id: int, by, rationale: str) -> Case:
    """Revoke an approval: the case reopens (earlier votes void), the gate holds
    again at once (a task allowed through it is held when it tries to start), and
    tasks approved through it, running or not started yet, get a `stop` callback."""
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
    case.due_at = due_again(case)
    case._history_user = by
    case._change_reason = f"approval revoked: {rationale}"
    case.save()
    _chain("case.revoked", case=case, by=by, version=case.version, rationale=rationale)
    _void_votes(case, old_version=case.version - 1, why=f"approval revoked: {rationale}", by=by)
    send_case_changed(case, "revoked", by=by)
    stopping = list(ExecutionTask.objects.filter(status__in=STOPPABLE, gate_case=str(case.pk)))
    why = f"approval revoked: {rationale}"
    task_callbacks_queue(stopping, CallbackDelivery.Type.STOP, case=case, reason=why, decision="hold")
    return case
