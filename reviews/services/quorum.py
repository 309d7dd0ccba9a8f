"""Whether a case's eligible members can still reach its quorum: the flag operators
are alerted by, set on a recusal, a policy proposal or a committee change.
"""

from __future__ import annotations

import logging

from django.db import transaction

from reviews.models import (
    QUEUE_STATUSES,
    Case,
)
from reviews.selectors import committee_members, eligible_member_ids, remember_submitters, submitters_of
from reviews.services.common import _notify

logger = logging.getLogger(__name__)


def _check_short_of_members(case: Case, *, by=None, notify: bool = True) -> bool:
    """Set the case's flag; True when it was just set (operators to be told: a job
    enqueued on commit, unless `notify` is False and the caller tells them)."""
    short = len(eligible_member_ids(case)) < case.quorum
    if short == case.short_of_members:
        return False
    case.short_of_members = short
    case._history_user = by
    case._change_reason = (
        "fewer eligible members than the quorum: operators alerted" if short else "enough eligible members again"
    )
    case.save()
    if short:
        logger.warning("Case %s cannot reach its quorum of %s: too few eligible members", case.pk, case.quorum)
        if notify:
            _notify("notify_quorum_impossible", case.pk)
    return short


def case_check_quorum_reach(*, case_id: int, notify: bool = True) -> bool:
    """Flag (or unflag) one case whose eligible members cannot reach its quorum. True
    when it was just flagged; the operators' notice is then a job enqueued on commit,
    or, with notify=False (a job already running in a worker), the caller's to send
    once this has committed."""
    return _check_queued_case(case_id, notify=notify)[0]


def case_opened_quorum_check(*, case_id: int) -> tuple[bool, Case | None]:
    """case_check_quorum_reach(notify=False) for reviews.jobs.case_opened, which then
    sends the case's notices: also returns the case as read under lock, with its
    submitters resolved and kept on it (selectors.remember_submitters), so that the
    notices do not read the case and work its submitters out again. (False, None)
    when the case is no longer in the queue."""
    return _check_queued_case(case_id, notify=False, remember=True)


def _check_queued_case(case_id: int, *, notify: bool, remember: bool = False) -> tuple[bool, Case | None]:
    """The quorum check of one case still in the queue, under its row lock: (just
    flagged, the case), or (False, None) when it left the queue."""
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id, status__in=QUEUE_STATUSES).first()
        if case is None:
            return False, None
        if remember:
            remember_submitters(case)
        return _check_short_of_members(case, notify=notify), case


def recheck_short_of_members() -> int:
    """Re-flag every case in the queue after the committee changed (a member added,
    removed or deactivated): eligible members are the committee less the case's
    recusals and submitters. A few queries for the whole queue; only cases whose
    flag changes are locked and saved (operators are alerted as on a recusal).
    Returns how many flags changed."""
    from reviews.models import Recusal

    members = set(committee_members().values_list("pk", flat=True))
    queue = list(Case.objects.filter(status__in=QUEUE_STATUSES).values_list("pk", "quorum", "short_of_members"))
    excluded = {case_id: set(people) for case_id, people in submitters_of(pk for pk, _, _ in queue).items()}
    for case_id, member_id in Recusal.objects.filter(case__status__in=QUEUE_STATUSES).values_list(
        "case_id", "member_id"
    ):
        excluded.setdefault(case_id, set()).add(member_id)
    changed = 0
    for case_id, quorum, short in queue:
        if (len(members - excluded.get(case_id, set())) < quorum) != short:
            case_check_quorum_reach(case_id=case_id)
            changed += 1
    return changed
