"""Cases about subjects the apps above reviews own (reviews.subjects): opened,
idempotently, one waiting case per subject, and reopened, with the quorum,
rule, approval validity, SLA, severity and reason the owning app decides.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import subjects
from reviews.models import WAITING_STATUSES, Case, CaseStatus
from reviews.services.common import _chain, _notify, _void_votes, due_again
from reviews.services.errors import NotAllowed
from reviews.signals import send_case_changed

SUBJECT_REF_MAX = 200


def _check(kind: str, subject_ref: str, quorum: int) -> None:
    if not subjects.is_subject_kind(kind):
        raise NotAllowed(f"unknown case kind {kind!r}: register it with reviews.subjects.register_kind", field="kind")
    if not subject_ref or len(subject_ref) > SUBJECT_REF_MAX:
        raise NotAllowed(f"a subject reference is 1 to {SUBJECT_REF_MAX} characters", field="subject_ref")
    if quorum < 1:
        raise NotAllowed("a case needs a quorum of at least 1", field="quorum")


def _waiting(kind: str, subject_ref: str) -> Case | None:
    return (
        Case.objects.select_for_update()
        .filter(kind=kind, subject_ref=subject_ref, status__in=WAITING_STATUSES)
        .order_by("-id")
        .first()
    )


@transaction.atomic
def subject_case_open(
    *,
    kind: str,
    subject_ref: str,
    title: str,
    reason: str,
    quorum: int,
    approval_valid_hours: int = 24 * 90,
    sla_hours: int = 72,
    rule_name: str = "",
    severity: int = 0,
    decide_by_majority: bool = False,
    by=None,
    actor: str = "",
) -> Case:
    """Open a committee case about `subject_ref`, or return the one already waiting
    on it (its quorum raised to `quorum` if that is higher): one waiting case per
    subject, even when two requests open it at once (a partial unique constraint).
    The case is on the audit chain (`case.opened`) with the reason."""
    _check(kind, subject_ref, quorum)
    existing = _waiting(kind, subject_ref)
    if existing is not None:
        return _raise_quorum(existing, quorum, why=reason, by=by)
    now = timezone.now()
    case = Case(
        kind=kind,
        status=CaseStatus.OPEN,
        title=title[:300],
        subject_ref=subject_ref,
        rule_name=rule_name[:100],
        quorum=quorum,
        approval_valid_hours=approval_valid_hours,
        decide_by_majority=decide_by_majority,
        severity=severity,
        sla_hours=sla_hours,
        opened_at=now,
        due_at=now + timedelta(hours=sla_hours),
    )
    case._history_user = by
    case._change_reason = f"opened: {reason}"
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError:
        existing = _waiting(kind, subject_ref)
        if existing is None:
            raise
        return _raise_quorum(existing, quorum, why=reason, by=by)
    _chain(
        "case.opened",
        case=case,
        by=by,
        actor=actor,
        case_kind=kind,
        subject_ref=subject_ref,
        reason=reason,
        quorum=quorum,
        approval_valid_hours=approval_valid_hours,
        rule=rule_name,
    )
    _notify("case_opened", case.pk)  # its notice and its quorum check, in one job
    return case


def _raise_quorum(case: Case, quorum: int, *, why: str, by) -> Case:
    if quorum > case.quorum:
        case.quorum = quorum
        case._history_user = by
        case._change_reason = f"quorum raised to {quorum}: {why}"
        case.save()
        _notify("check_quorum_reach", case.pk)
    return case


@transaction.atomic
def subject_case_reopen(
    *, case_id: int, reason: str, quorum: int | None = None, sla_hours: int | None = None, by=None, actor: str = ""
) -> Case:
    """Put a decided (approved, rejected or expired) case of a registered kind back in
    front of the committee: earlier votes void, a new due time, `case_changed`
    "reopened". Due after `sla_hours` (which becomes the case's SLA), or the case's own SLA.
    A case still waiting only has its quorum raised."""
    case = Case.objects.select_for_update().get(pk=case_id)
    _check(case.kind, case.subject_ref, quorum or case.quorum)
    if case.status in WAITING_STATUSES:
        return _raise_quorum(case, quorum or case.quorum, why=reason, by=by)
    if case.status not in (CaseStatus.APPROVED, CaseStatus.REJECTED, CaseStatus.EXPIRED):
        raise NotAllowed(f"case {case.pk} is {case.status}; it cannot be reopened")
    case.status = CaseStatus.OPEN
    case.version += 1
    case.quorum = max(case.quorum, quorum or 0)
    case.approved_until = None
    case.decided_at = None
    case.decided_by = None
    case.rationale = ""
    if sla_hours is not None:
        case.sla_hours = sla_hours
    case.due_at = due_again(case)
    case._history_user = by
    case._change_reason = f"reopened: {reason}"
    case.save()
    _chain("case.reopened", case=case, by=by, actor=actor, version=case.version, reason=reason)
    _void_votes(case, old_version=case.version - 1, why=f"reopened: {reason}", by=by, actor=actor)
    send_case_changed(case, "reopened", by=by)
    _notify("case_opened", case.pk)  # its notice and its quorum check, in one job
    return case
