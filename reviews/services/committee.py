"""The committee at work: votes and their tally, recusals, comments and claims."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from reviews import selectors, subjects
from reviews.models import (
    DECIDED_STATUSES,
    Case,
    CaseStatus,
)
from reviews.selectors import (
    VOTABLE_STATUSES,
    case_changes_since,
    eligible_member_ids,
    remember_submitters,
    why_cannot_vote,
)
from reviews.services.cases import case_decide
from reviews.services.common import _chain, check_rationale
from reviews.services.errors import NotAllowed
from reviews.services.quorum import _check_short_of_members
from reviews.signals import send_vote_recorded


@transaction.atomic
def vote_cast(*, case_id: int, member, choice: str, rationale: str, version: int | None = None):
    """Record a member's vote on the case's current version, then apply the
    decision rules: any reject (or, by policy, a majority of eligible members
    rejecting) rejects; a request for changes sets `changes_requested` and waits
    for a revision; the quorum of approvals approves. The case row is locked, so
    two members voting at once are both recorded and exactly one decision is made.

    A vote is for the version the member saw: `version` (the vote form carries
    it) older than the case's is refused, "the case changed since you opened it",
    naming what changed. Every page passes it; only code acting on the current
    version by construction (demo data, tests) leaves it out.
    """
    from reviews.models import Vote

    if choice not in Vote.Choice.values:
        raise NotAllowed(f"choice must be one of {', '.join(Vote.Choice.values)}", field="choice")
    rationale = check_rationale(rationale)
    case = Case.objects.select_for_update().get(pk=case_id)
    if case.status in VOTABLE_STATUSES:
        # Asked twice (why_cannot_vote, the tally's eligible members): resolved once, under
        # the case's lock, which a task joining the case takes too (services.gate).
        remember_submitters(case)
    reason = why_cannot_vote(case, member)
    if reason:
        raise NotAllowed(f"You cannot vote: {reason}.")
    if version is not None and version != case.version:
        changes = "; ".join(case_changes_since(case, version)) or "its subject changed"
        raise NotAllowed(
            f"Not recorded: the case changed since you opened it (you saw version {version}, it is now version "
            f"{case.version}: {changes}). Read what changed, then vote again.",
            field="version",
            version=case.version,
        )
    refused = subjects.refused_choices(case).get(choice)
    if refused:
        raise NotAllowed(f"You cannot vote {choice.replace('_', ' ')}: {refused}.", field="choice")
    vote = Vote(case=case, case_version=case.version, member=member, choice=choice, rationale=rationale)
    vote._history_user = member
    vote._change_reason = f"voted {choice} on version {case.version}"
    vote.save()
    _chain("vote.cast", case=case, by=member, vote=vote.pk, version=case.version, choice=choice, rationale=rationale)
    send_vote_recorded(vote, case, honeypot=selectors.case_is_honeypot(case))
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
    _ensure_undecided(case, "recuse from")
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


def _ensure_undecided(case: Case, action: str) -> None:
    """Recusing from or claiming a decided case changes nothing but its record: refused, saying why."""
    if case.status in DECIDED_STATUSES:
        when = f" on {case.decided_at:%Y-%m-%d %H:%M} UTC" if case.decided_at else ""
        raise NotAllowed(
            f"This case was already decided ({case.get_status_display().lower()}{when}): there is nothing to "
            f"{action}. A revision of its report, or a revocation, opens it again."
        )


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

    return settings.REVIEWS_CLAIM_MINUTES


@transaction.atomic
def case_claim(*, case_id: int, member) -> Case:
    """Say that `member` is working on the case, until the claim expires. Others may still vote."""
    case = Case.objects.select_for_update().get(pk=case_id)
    _ensure_undecided(case, "claim")
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
