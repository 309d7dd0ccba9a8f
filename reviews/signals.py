"""Signals the apps above reviews listen to, so reviews never imports them.

`case_changed(sender=Case, case=..., event=..., by=...)` is sent inside the
transaction that changed the case (its row locked), after the case is saved
and before the tasks waiting on it are released or denied: a receiver updates
its own rows in the same transaction, so both commit or neither does, and the
gate, asked again for the held tasks, already sees them. Events:

- "approved", "rejected", "changes_requested": the case was decided;
- "revoked": an approval was withdrawn (the case is open again);
- "reopened": a decided case went back to the committee;
- "expired": an approval lapsed (continuing review).

`by` is the acting user, or None for the system (expiry). Sent for every case
kind; receivers look at `case.kind` (and `case.subject_ref`) first.

`vote_recorded(sender=Vote, vote=..., case=..., honeypot=...)` is sent by
`services.vote_cast` (every path a vote takes: the case page, demo data, code)
inside the vote's transaction, after the vote row is written and before the
tally decides the case. `honeypot` is True when the case's report is a honeypot
an operator seeded. Sent with `send()`, not `send_robust()`: a receiver that
raises fails the vote, and nothing of it is recorded.
"""

from django.dispatch import Signal

case_changed = Signal()
vote_recorded = Signal()


def send_case_changed(case, event: str, *, by=None) -> None:
    case_changed.send(sender=type(case), case=case, event=event, by=by)


def send_vote_recorded(vote, case, *, honeypot: bool) -> None:
    vote_recorded.send(sender=type(vote), vote=vote, case=case, honeypot=honeypot)
