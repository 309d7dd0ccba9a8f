"""What several of reviews' services share: the audit-chain entries, opening and
reopening a case (reports in and the gate both do), notification jobs
enqueued on commit, and the written-rationale check.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.history import save_with_history
from core.jobs import enqueue_on_commit
from reviews import policy
from reviews.models import (
    Case,
    CaseStatus,
)
from reviews.reports import ReportRecord
from reviews.services.errors import NotAllowed
from reviews.signals import send_case_changed

PAUSE_POLICY = "global-pause"


NO_RULE_POLICY = "no-matching-rule"

# A case opened without a rule (no rule matched) has this long to be decided.
DEFAULT_SLA_HOURS = 72


def due_again(case: Case, now=None):
    """When a case put back in front of the committee (reopened, escalated, revoked)
    is due: its own SLA from now, the one it was opened with."""
    return (now or timezone.now()) + timedelta(hours=case.sla_hours)


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


MIN_RATIONALE_CHARS = 15
MIN_RATIONALE_WORDS = 3


def check_rationale(text: str, *, field: str = "rationale") -> str:
    """A written reason a person can act on: not empty, not one word."""
    text = (text or "").strip()
    if len(text) < MIN_RATIONALE_CHARS or len(text.split()) < MIN_RATIONALE_WORDS:
        raise NotAllowed(
            f"write a rationale of at least {MIN_RATIONALE_WORDS} words and {MIN_RATIONALE_CHARS} characters",
            field=field,
        )
    return text


def _open_case(
    *, kind: str, status: str, title: str, rule: policy.Rule | None, now, why: str, by=None, **subject
) -> Case:
    """A new case; `by` is the person it is recorded for (a report's uploader, or the
    owner of the API key that sent it); None when the gate opened it on its own."""
    case = _new_case(kind=kind, status=status, title=title, rule=rule, now=now, **subject)
    # The case and its history row in one statement on PostgreSQL (core.history; no
    # receiver but simple-history's listens to a case's save): a held report or task
    # opens one inside its own transaction.
    save_with_history(case, reason=why, user=by)
    _case_opened(case)
    return case


def _new_case(*, kind: str, status: str, title: str, rule: policy.Rule | None, now, **subject) -> Case:
    """The case _open_case saves, not saved yet (a report stores it in the same
    statement as itself: reviews.services.intake)."""
    return Case(
        kind=kind,
        status=status,
        title=title[:300],
        rule_id=rule.id if rule else None,
        rule_name=rule.name if rule else NO_RULE_POLICY,
        quorum=rule.quorum if rule else 1,
        approval_valid_hours=rule.approval_valid_hours if rule else 24 * 90,
        decide_by_majority=rule.decide_by_majority if rule else False,
        sla_hours=rule.sla_hours if rule else DEFAULT_SLA_HOURS,
        opened_at=now,
        due_at=now + timedelta(hours=rule.sla_hours if rule else DEFAULT_SLA_HOURS),
        **subject,
    )


def _case_opened(case: Case) -> None:
    """Once a new case's reports are linked (their submitters may not vote): its quorum
    check, and for an open case the committee's notice, in the same job (one work
    horse, not two), enqueued when the case commits."""
    _notify("case_opened" if case.status == CaseStatus.OPEN else "check_quorum_reach", case.pk)


def _notify(job_name: str, *args) -> None:
    """Enqueue a job of reviews.jobs (a notification or a quorum check) once the transaction commits."""
    enqueue_on_commit(f"reviews.jobs.{job_name}", *args)


def _reopen(
    case: Case, *, quorum: int, why: str, revision: ReportRecord | None = None, actor: str = "", by=None
) -> Case:
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
        case.due_at = due_again(case)
    reopened = case.status == CaseStatus.OPEN and changed
    case.quorum = max(case.quorum, quorum)
    if changed:
        case._change_reason = why
        case._history_user = by
        case.save()
        _notify("check_quorum_reach", case.pk)  # a higher quorum or a new version may not be reachable
        if reopened:
            send_case_changed(case, "reopened")
    return case
