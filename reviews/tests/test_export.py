"""Case exports: the full record as JSON and CSV, whose chain entries verify
against the audit chain; a date-range export for operators."""

import csv
import hashlib
import hmac
import io
import json
from datetime import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from audit.chain import canonical
from audit.keys import key_id_of
from audit.models import AuditEntry
from fsar.testing import report_md
from reviews import services

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


@pytest.fixture
def decided_case(agent, post_report, alice, bob, charlie):
    """A case with two report versions, a void vote, a recusal, a comment and a decision."""
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="request_changes", rationale="Add a rollback plan.")
    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: now with rollback"))
    services.recuse(case_id=case_id, member=charlie, reason="I advised the team that wrote this.")
    services.comment_add(case_id=case_id, author=bob, text="The rollback plan looks fine to me.")
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated now.")
    return case_id


def recompute(entry: dict) -> str:
    """The entry's HMAC-SHA256 under the chain key its key id names (docs/audit.md)."""
    secret = settings.AUDIT_CHAIN_KEY.encode()
    assert entry["key_id"] == key_id_of(secret)
    body = canonical(
        seq=entry["seq"],
        created_at=datetime.fromisoformat(entry["created_at"]),
        kind=entry["kind"],
        actor=entry["actor"],
        subject=entry["subject"],
        data=entry["data"],
        prev_hash=entry["prev_hash"],
    )
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_the_json_export_holds_the_full_record_and_its_hashes_verify_against_the_chain(client, operator, decided_case):
    client.force_login(operator)
    response = client.get(f"/reviews/cases/{decided_case}/export.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="fsar-case-{decided_case}.json"'
    record = json.loads(response.content)
    assert record["case"]["status"] == "approved" and not record["blind"]
    assert [r["report_id"] for r in record["reports"]] == ["r1", "r2"]
    assert record["reports"][0]["raw"].startswith("# FSAR Proposal Report")
    assert [(v["member"], v["choice"], v["counts"]) for v in record["votes"]] == [
        ("alice", "request_changes", False),
        ("alice", "approve", True),
        ("bob", "approve", True),
    ]
    assert record["votes"][1]["rationale"] == WHY
    assert record["recusals"][0]["reason"] == "I advised the team that wrote this."
    assert record["comments"][0]["text"] == "The rollback plan looks fine to me."
    assert any(h["object"] == "vote" and "request_changes" in h["what"] for h in record["history"])

    chain = record["chain"]
    assert [e["kind"] for e in chain] == [
        "vote.cast",
        "case.changes_requested",
        "vote.voided",
        "case.recused",
        "vote.cast",
        "vote.cast",
        "case.approved",
    ]
    for entry in chain:
        assert recompute(entry) == entry["hash"], f"entry #{entry['seq']} does not match its hash"
        # The previous link: the entry before it on the chain has exactly that hash.
        before = AuditEntry.objects.filter(seq=entry["seq"] - 1).values_list("hash", flat=True).first()
        assert entry["prev_hash"] == before
        assert AuditEntry.objects.get(seq=entry["seq"]).hash == entry["hash"]


def test_an_edited_export_no_longer_verifies(client, operator, decided_case):
    client.force_login(operator)
    record = json.loads(client.get(f"/reviews/cases/{decided_case}/export.json").content)
    entry = record["chain"][-1]
    entry["data"]["rationale"] = "alice: waved through"
    assert recompute(entry) != entry["hash"]


def test_the_csv_export_has_a_row_per_item_with_chain_hashes(client, alice, decided_case):
    client.force_login(alice)
    response = client.get(f"/reviews/cases/{decided_case}/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    sections = [r["section"] for r in rows]
    assert sections.count("report") == 2 and sections.count("vote") == 3 and sections.count("chain") == 7
    chain_rows = [r for r in rows if r["section"] == "chain"]
    approved = chain_rows[-1]
    assert approved["kind"] == "case.approved"
    assert approved["hash"] == AuditEntry.objects.get(kind="case.approved").hash
    assert json.loads(approved["data"])["version"] == 2


def test_a_committee_member_who_has_not_voted_gets_a_blind_export(client, post_report, alice, bob):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    client.force_login(bob)
    record = json.loads(client.get(f"/reviews/cases/{case_id}/export.json").content)
    assert record["blind"] and record["votes"] == []
    assert not [e for e in record["chain"] if e["kind"] == "vote.cast"]
    assert not [h for h in record["history"] if h["object"] == "vote"]


def test_export_access_committee_and_operators_yes_customers_no(client, decided_case, operator, alice, customer_user):
    for user, status in ((operator, 200), (alice, 200), (customer_user, 404)):
        client.force_login(user)
        for fmt in ("json", "csv"):
            assert client.get(f"/reviews/cases/{decided_case}/export.{fmt}").status_code == status
    client.force_login(alice)
    assert client.get("/reviews/export/").status_code == 404  # the range export is for operators
    assert client.get(f"/reviews/cases/{decided_case}/export.xml").status_code == 404


def test_operators_export_the_cases_opened_or_decided_in_a_range(
    frozen_clock, client, operator, decided_case, post_report
):
    other = post_report(report_md("old", severity=30)).json()["gate"]["case"]
    from reviews.models import Case

    Case.objects.filter(pk=other).update(opened_at=timezone.now() - timezone.timedelta(days=40))
    client.force_login(operator)
    assert b"export-form" in client.get("/reviews/export/").content
    today = timezone.now().date()
    response = client.get("/reviews/export/", {"start": today.isoformat(), "end": today.isoformat(), "format": "json"})
    payload = json.loads(response.content)
    assert [c["case"]["id"] for c in payload["cases"]] == [decided_case]
    assert payload["chain_head"]["hash"] == AuditEntry.objects.order_by("-seq").first().hash
    for entry in payload["cases"][0]["chain"]:
        assert recompute(entry) == entry["hash"]
    csv_body = client.get(
        "/reviews/export/", {"start": today.isoformat(), "end": today.isoformat(), "format": "csv"}
    ).content.decode()
    assert {r["case"] for r in csv.DictReader(io.StringIO(csv_body))} == {str(decided_case)}
    refused = client.get("/reviews/export/", {"start": "2026-02-02", "end": "2026-02-01", "format": "json"})
    assert refused.status_code == 200 and b"before the first" in refused.content
