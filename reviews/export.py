"""A case's full record for export (JSON and CSV): report versions, votes with
rationale, recusals, comments, history, and its audit-chain entries with hashes,
so that a reader who holds the chain's key can recompute each entry's hash
(audit.chain.compute_hash) and check it against the chain.

Blind voting holds here too: for a committee member who has not voted on (or
recused from) the current version of an undecided case, that version's votes
and their chain entries are left out and the record says `blind: true`.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q

from audit.chain import current_head
from audit.models import AuditEntry
from core import csvsafe
from core.roles import COMMITTEE, has_role
from reviews.models import WAITING_STATUSES, Case, CaseStatus, Comment, PolicyChange, Recusal, Vote

MAX_RANGE_CASES = 2000


def _at(value) -> str | None:
    return value.isoformat() if value else None


def _who(user) -> str | None:
    return user.get_username() if user is not None else None


def is_blind(case: Case, user) -> bool:
    """The case page's rule: votes on the current version of an undecided case stay
    hidden from a committee member until they vote or recuse."""
    undecided = case.status in (*WAITING_STATUSES, CaseStatus.EXPIRED, CaseStatus.ADVISORY)
    if not undecided or not has_role(user, COMMITTEE):
        return False
    acted = case.votes.filter(case_version=case.version, member_id=user.pk).exists()
    return not acted and not case.recusals.filter(member_id=user.pk).exists()


def case_record(case: Case, *, user) -> dict:
    """The case's full record, as `user` may read it (blind voting holds)."""
    blind = is_blind(case, user)
    reports = [_report(r) for r in case.reports.select_related("submitted_by", "uploaded_by").order_by("id")]
    votes = [
        _vote(v, case)
        for v in case.votes.select_related("member").order_by("created_at", "id")
        if not (blind and v.case_version == case.version)
    ]
    recusals = [
        {"id": r.pk, "member": _who(r.member), "reason": r.reason, "at": _at(r.created_at)}
        for r in case.recusals.select_related("member").order_by("created_at", "id")
    ]
    comments = [
        {"id": c.pk, "author": _who(c.author), "text": c.text, "at": _at(c.created_at)}
        for c in case.comments.select_related("author").order_by("created_at", "id")
    ]
    change = PolicyChange.objects.select_related("proposed_by").filter(case=case).first()
    history = _history(case, change, blind=blind)
    return {
        "case": _case(case),
        "blind": blind,
        "reports": reports,
        "policy_change": _policy_change(change) if change is not None else None,
        "votes": votes,
        "recusals": recusals,
        "comments": comments,
        "history": history,
        "chain": _chain(case, change, blind=blind),
    }


def _case(case: Case) -> dict:
    return {
        "id": case.pk,
        "kind": case.kind,
        "status": case.status,
        "title": case.title,
        "rule": case.rule_name,
        "task_type": case.task_type,
        "ai_model": case.ai_model,
        "severity": case.severity,
        "quorum": case.quorum,
        "version": case.version,
        "opened_at": _at(case.opened_at),
        "due_at": _at(case.due_at),
        "decided_at": _at(case.decided_at),
        "decided_by": _who(case.decided_by),
        "rationale": case.rationale,
        "approved_until": _at(case.approved_until),
    }


def _report(r) -> dict:
    """One version of the report, as received, with the gate's decision on it."""
    return {
        "report_id": r.report_id,
        "timestamp": _at(r.timestamp),
        "received_at": _at(r.received_at),
        "severity": r.severity,
        "block_execution": r.block_execution,
        "task_type": r.task_type,
        "supersedes": r.supersedes_id,
        "proposal": r.proposal,
        "risks": r.risks,
        "mitigations": r.mitigations,
        "raw_format": r.raw_format,
        "raw": r.raw,
        "submitted_by_key": r.submitted_by.name if r.submitted_by else None,
        "uploaded_by": _who(r.uploaded_by),
        "gate": {
            "decision": r.gate_decision,
            "reason": r.gate_reason,
            "policy": r.gate_policy,
            "values": r.gate_values,
        },
    }


def _vote(v, case: Case) -> dict:
    return {
        "id": v.pk,
        "version": v.case_version,
        "counts": v.case_version == case.version,
        "member": _who(v.member),
        "choice": v.choice,
        "rationale": v.rationale,
        "at": _at(v.created_at),
    }


def _policy_change(change: PolicyChange) -> dict:
    return {
        "id": change.pk,
        "operation": change.operation,
        "rule": change.rule_name,
        "status": change.status,
        "emergency": change.emergency,
        "reason": change.reason,
        "before": change.before,
        "proposed": change.proposed,
        "diff": change.diff,
        "proposed_by": _who(change.proposed_by),
        "proposed_at": _at(change.proposed_at),
        "applied_at": _at(change.applied_at),
    }


def _chain(case: Case, change: PolicyChange | None, *, blind: bool) -> list[dict]:
    """The case's (and its policy change's) audit-chain entries, with their hashes;
    a blind reader does not get the current version's votes."""
    subjects = [f"case:{case.pk}"] + ([f"policy_change:{change.pk}"] if change else [])
    return [
        {
            "seq": e.seq,
            "created_at": _at(e.created_at),
            "kind": e.kind,
            "actor": e.actor,
            "subject": e.subject,
            "data": e.data,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
            "key_id": e.key_id,
        }
        for e in AuditEntry.objects.filter(subject__in=subjects).order_by("seq")
        if not (blind and e.kind == "vote.cast" and e.data.get("version") == case.version)
    ]


def _history(case: Case, change: PolicyChange | None, *, blind: bool) -> list[dict]:
    rows = []

    def add(model: str, h, what: str) -> None:
        rows.append(
            {
                "at": _at(h.history_date),
                "who": _who(h.history_user),
                "object": model,
                "type": {"+": "created", "~": "changed", "-": "deleted"}[h.history_type],
                "what": what,
            }
        )

    for h in case.history.select_related("history_user"):
        add("case", h, h.history_change_reason or h.status)
    for h in Vote.history.filter(case_id=case.pk).select_related("history_user"):
        if blind and h.case_version == case.version:
            continue
        add("vote", h, f"{h.choice} (version {h.case_version}): {h.rationale}")
    for h in Recusal.history.filter(case_id=case.pk).select_related("history_user"):
        add("recusal", h, h.reason)
    for h in Comment.history.filter(case_id=case.pk).select_related("history_user"):
        add("comment", h, h.text)
    if change is not None:
        for h in change.history.select_related("history_user"):
            add("policy_change", h, h.history_change_reason or h.status)
    return sorted(rows, key=lambda r: r["at"])


def cases_in_range(start: date, end: date):
    """Cases opened or decided between `start` and `end` (inclusive days, UTC)."""
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = since + timedelta(days=(end - start).days + 1)
    opened = Q(opened_at__gte=since, opened_at__lt=until)
    decided = Q(decided_at__gte=since, decided_at__lt=until)
    return Case.objects.filter(opened | decided).select_related("decided_by").order_by("id")


class RangeTooLarge(Exception):
    def __init__(self) -> None:
        super().__init__(f"More than {MAX_RANGE_CASES} cases in that range: choose a shorter one.")


def range_records(start: date, end: date, *, user) -> list[dict]:
    """The record of every case opened or decided in the range, as `user` may read
    it; RangeTooLarge past MAX_RANGE_CASES."""
    cases = list(cases_in_range(start, end)[: MAX_RANGE_CASES + 1])
    if len(cases) > MAX_RANGE_CASES:
        raise RangeTooLarge()
    return [case_record(case, user=user) for case in cases]


def range_payload(start: date, end: date, records: list[dict], *, now: datetime) -> dict:
    """The JSON range export: the range, when, the chain's head (to check the entries
    against) and the cases' records."""
    head = current_head()
    return {
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "exported_at": now.isoformat(),
        "chain_head": {"seq": head.seq, "hash": head.hash},
        "cases": records,
    }


def as_json(payload: dict) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False)


CSV_COLUMNS = ["case", "section", "ref", "at", "actor", "kind", "text", "data", "prev_hash", "hash"]


def _csv_rows(record: dict):
    case = record["case"]
    cid = case["id"]

    def data(d: dict) -> str:
        return json.dumps(d, ensure_ascii=False, sort_keys=True)

    yield [cid, "case", cid, case["opened_at"], case["decided_by"] or "", case["status"], case["title"], data(case)]
    for r in record["reports"]:
        rest = {k: v for k, v in r.items() if k not in ("proposal", "report_id", "received_at")}
        who = r["uploaded_by"] or r["submitted_by_key"] or ""
        yield [cid, "report", r["report_id"], r["received_at"], who, r["gate"]["decision"], r["proposal"], data(rest)]
    if record["policy_change"]:
        p = record["policy_change"]
        yield [cid, "policy_change", p["id"], p["proposed_at"], p["proposed_by"], p["operation"], p["reason"], data(p)]
    for v in record["votes"]:
        extra = {"version": v["version"], "counts": v["counts"]}
        yield [cid, "vote", v["id"], v["at"], v["member"], v["choice"], v["rationale"], data(extra)]
    for r in record["recusals"]:
        yield [cid, "recusal", r["id"], r["at"], r["member"], "recused", r["reason"], ""]
    for c in record["comments"]:
        yield [cid, "comment", c["id"], c["at"], c["author"], "comment", c["text"], ""]
    for h in record["history"]:
        yield [cid, "history", h["object"], h["at"], h["who"] or "system", h["type"], h["what"], ""]
    for e in record["chain"]:
        yield [cid, "chain", e["seq"], e["created_at"], e["actor"], e["kind"], e["subject"], data(e["data"]),
               e["prev_hash"], e["hash"]]  # fmt: skip


def as_csv(records: list[dict]) -> str:
    """One row per item (the case, each report version, vote, recusal, comment,
    history row and chain entry), JSON in the `data` column."""
    out = io.StringIO()
    writer = csvsafe.writer(out)  # no cell a spreadsheet would run as a formula
    writer.writerow(CSV_COLUMNS)
    for record in records:
        for row in _csv_rows(record):
            writer.writerow(row + [""] * (len(CSV_COLUMNS) - len(row)))
    return out.getvalue()
