"""What the indicators of reviewer behaviour read, written here: when a member
first opens a case version (CaseView), and the honeypot reports operators seed
to test the committee.

A honeypot is a known-bad report an operator seeds from the admin. It is a
report like any other in the queue, on the case page, in exports and mails; only
the admin shows the flag. Its case releases nothing whatever the vote, and for
the AI client it does not exist (reviews.selectors.report_for_client): reading
it answers 404, a task naming it as its proposal is refused as an unknown
proposal, and it is never named as a rejected precedent of the AI's reports.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.roles import OPERATORS, has_role
from reviews.models import Action, Case, CaseView, Report
from reviews.reports import parse_any
from reviews.services.common import _chain
from reviews.services.errors import NotAllowed
from reviews.services.intake import _prepare, _store_report


def case_view_record(*, case: Case, member, now=None) -> None:
    """Record that `member` opened the case page of the case's current version, the
    first time only: one INSERT … ON CONFLICT DO NOTHING (later views, and two tabs
    at once, leave the first time as it is). The caller checks the member may vote
    on this version (the case page does: why_cannot_vote)."""
    view = CaseView(case=case, case_version=case.version, member=member, first_viewed_at=now or timezone.now())
    CaseView.objects.bulk_create([view], ignore_conflicts=True)


@transaction.atomic
def honeypot_seed(*, raw: bytes, filename: str = "", by, reason: str, shown_as=None) -> Report:
    """Seed a honeypot report: an operator's known-bad report for the committee.

    Parsed and decided exactly as an upload is (same parser, rules and case), so
    nothing in the queue or on the case tells it apart; it must be a new report
    (no `supersedes`, an id not taken) that the policy holds for the committee (a
    report the rules allow or deny would never reach them: refused, saying so).
    `shown_as`: an API key the report appears to come from (as a report sent
    through the API); otherwise it appears uploaded by the operator. The seeding
    operator and `reason` are in the report's history and on the audit chain
    (`honeypot.seeded`, operators only), never on the case."""
    from tasks.models import ApiKey

    if not has_role(by, OPERATORS):
        raise NotAllowed("only operators seed honeypot reports")
    reason = (reason or "").strip()
    if not reason:
        raise NotAllowed("seeding a honeypot needs a reason", field="reason")
    if shown_as is not None and not isinstance(shown_as, ApiKey):
        raise NotAllowed("shown_as must be an API key", field="shown_as")
    record, raw_format = parse_any(raw, filename=filename)
    if record.supersedes is not None:
        raise NotAllowed("a honeypot is a new report: it cannot supersede another", field="supersedes")
    if Report.objects.filter(report_id=record.id).exists():
        raise NotAllowed(f"a report with id {record.id!r} already exists", field="id")
    report = _store_report(
        record,
        _prepare(record),
        raw=raw,
        raw_format=raw_format,
        api_key=shown_as,
        user=None if shown_as is not None else by,
        honeypot=True,
        recorded_by=by,
    )
    if report.gate_decision != Action.HOLD or report.case_id is None:
        raise NotAllowed(
            f"the policy would not hold this report for the committee ({report.gate_reason}): raise its severity "
            "or change its proposal so that a hold rule matches"
        )
    _chain(
        "honeypot.seeded",
        subject=f"honeypot:{report.pk}",
        by=by,
        report=report.report_id,
        case=report.case_id,
        shown_as=shown_as.name if shown_as is not None else None,
        reason=reason,
        at=timezone.now().isoformat(),
    )
    return report
