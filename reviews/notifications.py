"""Email notifications about cases, sent by RQ jobs after commit (reviews.jobs).

Each notice is recorded in NotificationSent before it is mailed, in one
transaction, so a job run twice (or the periodic SLA scan) sends it once; a
failed send rolls the record back and the job can run again.

Non-essential notices (case opened, SLA reminders) go to committee members who
did not turn them off (NotificationPreference); essential ones (a decision or a
change request on what you submitted, a case that cannot reach its quorum, a
broken audit chain in audit.jobs) always go.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.urls import reverse
from django.utils import timezone

from core.roles import OPERATORS
from reviews.models import Case, CaseStatus, NotificationPreference, NotificationSent
from reviews.selectors import case_is_honeypot, committee_members, eligible_member_ids, submitters

logger = logging.getLogger(__name__)

CASE_OPENED = "case_opened"
SLA_NEAR = "sla_near"
SLA_PAST = "sla_past"
DECISION = "decision"
QUORUM_IMPOSSIBLE = "quorum_impossible"


def case_url(case: Case) -> str:
    return f"{settings.SITE_URL}{reverse('reviews:case', args=[case.pk])}"


def _emails(user_ids) -> list[str]:
    users = get_user_model().objects.filter(pk__in=set(user_ids), is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def committee_emails(*, preference: str, exclude: set[int] = frozenset()) -> list[str]:
    """Committee members with an address who did not turn `preference` off."""
    off = set(NotificationPreference.objects.filter(**{preference: False}).values_list("user_id", flat=True))
    ids = set(committee_members().values_list("pk", flat=True)) - off - set(exclude)
    return _emails(ids)


def operator_emails() -> list[str]:
    return _emails(get_user_model().objects.filter(groups__name=OPERATORS).values_list("pk", flat=True))


def send_once(*, case: Case, kind: str, key: str, recipients: list[str], subject: str, body: str) -> bool:
    """Record the notice, then mail each recipient separately (nobody sees the others'
    addresses). False when it was sent before or there is nobody to send it to."""
    if not recipients:
        return False
    try:
        with transaction.atomic():
            NotificationSent.objects.create(case=case, kind=kind, key=key[:100], recipients=recipients)
            connection = get_connection()
            messages = [EmailMessage(f"[FSAR] {subject}", body, None, [to], connection=connection) for to in recipients]
            connection.send_messages(messages)
    except IntegrityError:
        return False
    return True


def notify_case_opened(case_id: int, *, case: Case | None = None) -> bool:
    """To the committee but the case's submitters: a case is waiting. `case`: the
    case just read (under lock, in a transaction that committed) by the caller, a
    job that asks about it more than once (reviews.jobs.case_opened)."""
    case = case if case is not None else Case.objects.filter(pk=case_id).first()
    if case is None or case.status != CaseStatus.OPEN:
        return False
    due = f"{case.due_at:%Y-%m-%d %H:%M} UTC" if case.due_at else "no due time"
    return send_once(
        case=case,
        kind=CASE_OPENED,
        key=f"v{case.version}",
        recipients=committee_emails(preference="case_opened", exclude=submitters(case)),
        subject=f"Case {case.pk} opened: {case.title}",
        body=(
            f"A case is waiting for the ethics committee.\n\n{case.title}\n{case.get_kind_display()}, "
            f"rule {case.rule_name}, quorum {case.quorum}, due {due}.\n\n{case_url(case)}\n\n"
            f"Turn these mails off: {settings.SITE_URL}{reverse('reviews:notifications')}\n"
        ),
    )


def notify_decision(case_id: int, decision: str, version: int) -> bool:
    """To the submitters (uploaders, API key owners, the proposer of a policy change):
    approved, rejected, or changes requested. Essential: always sent."""
    case = Case.objects.filter(pk=case_id).first()
    if case is None or case_is_honeypot(case):
        # A honeypot's "submitter" may be an API key's owner it only appears to come from.
        return False
    wording = {
        CaseStatus.APPROVED: "was approved",
        CaseStatus.REJECTED: "was rejected",
        CaseStatus.CHANGES_REQUESTED: "needs changes: please submit a revision",
    }.get(decision, decision)
    return send_once(
        case=case,
        kind=DECISION,
        key=f"v{version}:{decision}",
        recipients=_emails(submitters(case)),
        subject=f"Case {case.pk} {wording}",
        body=(
            f"{case.title} {wording}.\n\nRationale:\n{case.rationale}\n\n{case_url(case)}\n\n"
            "You get this because you submitted what the case is about.\n"
        ),
    )


def notify_quorum_impossible(case_id: int, *, case: Case | None = None) -> bool:
    """To operators: recusals (or conflicts) leave fewer eligible members than the quorum.
    Essential. `case`, as for notify_case_opened: the case the caller just flagged."""
    case = case if case is not None else Case.objects.filter(pk=case_id).first()
    if case is None or not case.short_of_members:
        return False
    eligible = len(eligible_member_ids(case))
    return send_once(
        case=case,
        kind=QUORUM_IMPOSSIBLE,
        key=f"v{case.version}",
        recipients=operator_emails(),
        subject=f"Case {case.pk} cannot reach its quorum",
        body=(
            f"{case.title} needs {case.quorum} approvals but only {eligible} committee member(s) may vote "
            f"(the others recused or submitted it).\n\nAdd committee members or change the rule.\n\n{case_url(case)}\n"
        ),
    )


def sla_reminders(*, now=None) -> int:
    """Periodic: remind the committee of open cases once `REVIEWS_SLA_REMINDER_FRACTION`
    (0.8) of their time to decide (the case's own SLA, `Case.sla_hours`, counted from
    its opening or its last reopening) has passed, and again once they are overdue;
    each notice once per due time. The scan is bounded by due time: only cases due
    within the longest open case's SLA's last 20%, and overdue ones not yet reminded."""
    now = now or timezone.now()
    fraction = settings.REVIEWS_SLA_REMINDER_FRACTION
    longest = Case.objects.filter(status=CaseStatus.OPEN).aggregate(m=Max("sla_hours"))["m"] or 0
    horizon = now + timedelta(hours=longest * (1 - fraction))
    past_sent = NotificationSent.objects.filter(case=OuterRef("pk"), kind=SLA_PAST, sent_at__gte=OuterRef("due_at"))
    candidates = (
        Case.objects.filter(status=CaseStatus.OPEN, due_at__isnull=False, due_at__lte=horizon)
        .exclude(Exists(past_sent))
        .order_by("due_at")[:500]
    )
    sent = 0
    for case in candidates:
        total = timedelta(hours=case.sla_hours)
        if now >= case.due_at:
            kind, what = SLA_PAST, f"is overdue since {case.due_at:%Y-%m-%d %H:%M} UTC"
        elif now >= case.due_at - total * (1 - fraction):
            kind, what = SLA_NEAR, f"is due {case.due_at:%Y-%m-%d %H:%M} UTC"
        else:
            continue
        sent += send_once(
            case=case,
            kind=kind,
            key=f"{case.due_at.isoformat()}",
            recipients=committee_emails(preference="sla_reminders"),
            subject=f"Case {case.pk} {what}",
            body=(
                f"{case.title} {what} and is still open.\n\n{case_url(case)}\n\n"
                f"Turn these mails off: {settings.SITE_URL}{reverse('reviews:notifications')}\n"
            ),
        )
    return sent
