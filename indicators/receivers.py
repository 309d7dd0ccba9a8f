"""Receivers of other apps' signals (connected in IndicatorsConfig.ready).

`reviews.signals.vote_recorded` is sent inside the vote's transaction: an
approval of a honeypot report fires its alert there, so the alert exists before
the vote's request returns, and a failure here fails the vote (nothing of it is
kept)."""

from __future__ import annotations

from indicators.models import AlertKind
from indicators.services.alerts import alert_fire

APPROVE = "approve"


def honeypot_vote(sender, *, vote, case, honeypot: bool, **kwargs) -> None:
    if not honeypot or vote.choice != APPROVE:
        return
    alert_fire(
        kind=AlertKind.HONEYPOT,
        dedup_key=f"honeypot:vote:{vote.pk}",
        title="A committee member approved a honeypot report",  # the case only to operators (jobs, pages)
        member=vote.member,
        case_id=case.pk,
        at=vote.created_at,
        details={"vote": vote.pk, "case": case.pk, "case_version": vote.case_version},
    )
