"""The committee's pages: the queue, the case page (sanitised report, blind
votes, actions), and who may see them."""

import time

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Case, CaseStatus, Vote
from reviews.receivers import LOGIN_AT

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def case_for(post_report, report_id="r1", severity=30, **kwargs):
    return post_report(report_md(report_id, severity=severity, **kwargs)).json()["gate"]["case"]


def test_the_queue_lists_open_cases_most_urgent_first_with_quorum_progress(client, post_report, alice, bob):
    low = case_for(post_report, "low", 30)
    high = case_for(post_report, "high", 60)
    case_for(post_report, "advisory", 12)
    services.vote_cast(case_id=low, member=bob, choice="approve", rationale=WHY)
    client.force_login(alice)
    html = client.get(reverse("reviews:queue")).content.decode()
    assert html.index(f'data-case="{high}"') < html.index(f'data-case="{low}"')
    assert "1 cast · 2 needed" in html and "0 cast · 3 needed" in html  # blind: alice has not voted
    assert "Report advisory" not in html
    advisory = client.get(reverse("reviews:queue"), {"show": "advisory"}).content.decode()
    assert "Report advisory" in advisory and "Report high" not in advisory


def test_queue_filters_claimed_unclaimed_overdue_and_severity(client, post_report, alice):
    mine = case_for(post_report, "mine", 30)
    other = case_for(post_report, "other", 55)
    services.case_claim(case_id=mine, member=alice)
    client.force_login(alice)

    def ids(**params):
        response = client.get(reverse("reviews:queue"), params)
        return {c.pk for c in response.context["rows"]}

    assert ids(show="mine") == {mine}
    assert ids(show="unclaimed") == {other}
    assert ids(min_severity=50) == {other}
    assert ids(show="overdue") == set()
    with time_machine.travel(timezone.now() + timezone.timedelta(days=5)):
        assert ids(show="overdue") == {mine, other}


def test_the_queue_pages_by_keyset_in_the_same_queries_for_few_and_many(client, alice):
    from reviews.models import Case

    now = timezone.now()

    def make(n, start):
        Case.objects.bulk_create(
            Case(kind="tasks", status="open", title=f"c{i}", severity=i % 7, due_at=now, rule_name=f"r{i}")
            for i in range(start, start + n)
        )

    client.force_login(alice)
    make(10, 0)
    client.get(reverse("reviews:queue"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("reviews:queue"))
    make(300, 10)
    with CaptureQueriesContext(connection) as many:
        first = client.get(reverse("reviews:queue"))
    # 6, and who submitted the cases on the page for the "You" column (submitters_of: subject
    # kinds, policy changes, reports, the tasks they decide on; key owners when keys sent them).
    assert len(many) == len(few) <= 9, [q["sql"][:120] for q in many.captured_queries]
    assert not any("COUNT(" in q["sql"].upper() and "reviews_vote" not in q["sql"] for q in many.captured_queries)
    seen = [c.pk for c in first.context["rows"]]
    url = first.context["next_url"]
    while url:
        page = client.get(reverse("reviews:queue") + url)
        seen += [c.pk for c in page.context["rows"]]
        url = page.context["next_url"]
    assert len(seen) == len(set(seen)) == 310
    severity = dict(Case.objects.values_list("pk", "severity"))
    in_order = [severity[pk] for pk in seen]
    assert in_order == sorted(in_order, reverse=True)


def test_queue_rows_show_claim_due_and_my_vote_and_escape_titles(client, alice, bob):
    now = timezone.now()
    late = Case.objects.create(
        kind="tasks", status="open", title="<script>alert(1)</script>", severity=40, quorum=2,
        due_at=now - timezone.timedelta(hours=2), rule_name="late",
    )  # fmt: skip
    calm = Case.objects.create(
        kind="tasks", status="open", title="calm & quiet", severity=10, quorum=3,
        due_at=now + timezone.timedelta(hours=3, minutes=30), rule_name="calm",
    )  # fmt: skip
    services.case_claim(case_id=late.pk, member=bob)
    services.vote_cast(case_id=calm.pk, member=alice, choice="approve", rationale=WHY)
    client.force_login(alice)
    with time_machine.travel(now, tick=False):
        html = client.get(reverse("reviews:queue")).content.decode()

    def row(case):
        return html.split(f'data-case="{case.pk}"', 1)[1].split("</tr>", 1)[0]

    assert "<script>alert" not in html
    assert f'<a href="/reviews/cases/{late.pk}/">#{late.pk} &lt;script&gt;alert(1)&lt;/script&gt;</a>' in row(late)
    assert 'class="regressed"' in row(late) and "overdue by 2 h 0 min" in row(late)
    assert "<td>bob</td>" in row(late) and "0 cast · 2 needed" in row(late) and "not yet" in row(late)
    assert "calm &amp; quiet" in row(calm) and "in 3 h 30 min" in row(calm) and "regressed" not in row(calm)
    assert "1 of 3" in row(calm) and "<td>voted</td>" in row(calm) and "—" in row(calm)


def test_the_report_renders_sanitised(client, post_report, alice):
    hostile = (
        "implement_idea: <script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) and [docs](https://example.com)\n\n**bold**"
    )
    case_id = case_for(post_report, proposal=hostile)
    client.force_login(alice)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    proposal = html.split('data-testid="proposal">', 1)[1].split("</div>", 1)[0]
    assert "<script" not in proposal
    assert "<img" not in proposal  # raw HTML is shown as text, never as a tag with its onerror
    assert 'href="javascript' not in proposal
    assert "&lt;script&gt;" in proposal
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">docs</a>' in proposal
    assert "<strong>bold</strong>" in proposal


def test_votes_are_blind_until_you_vote(client, post_report, alice, bob):
    case_id = case_for(post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale="Alice's secret reasoning here.")
    client.force_login(bob)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert 'data-testid="blind">1 vote cast' in html
    assert "secret reasoning" not in html
    response = client.post(
        reverse("reviews:vote", args=[case_id]),
        {"choice": "reject", "rationale": "Bob disagrees with this plan.", "version": 1},
    )
    assert response.status_code == 302
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert "secret reasoning" in html and "Bob disagrees" in html
    assert Case.objects.get(pk=case_id).status == CaseStatus.REJECTED


def test_operators_see_a_case_read_only(client, post_report, operator, alice):
    case_id = case_for(post_report)
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY)
    client.force_login(operator)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert "vote-form" not in html and WHY in html
    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}
    )
    assert response.status_code == 404
    assert Vote.objects.count() == 1


def test_a_vote_needs_a_login_within_15_minutes(client, post_report, alice):
    case_id = case_for(post_report)
    client.force_login(alice)
    session = client.session
    session[LOGIN_AT] = int(time.time()) - 16 * 60
    session.save()
    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Vote.objects.exists()
    client.force_login(alice)  # signs in again
    client.post(reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1})
    assert Vote.objects.count() == 1


def field_error(html: str, testid: str) -> str:
    return html.split(f'data-testid="{testid}">')[1].split("</p>")[0]


def test_the_rationale_rule_is_written_beside_the_field(client, post_report, alice):
    case_id = case_for(post_report)
    client.force_login(alice)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert field_error(html, "rationale-rule").startswith("At least 3 words and 15 characters.")
    assert 'data-min-words="3"' in html and 'data-min-chars="15"' in html
    assert "rationale-error" not in html


def test_a_refused_vote_keeps_the_choice_and_the_rationale_with_the_error_under_the_field(client, post_report, alice):
    case_id = case_for(post_report)
    client.force_login(alice)
    vote = {"choice": "reject", "rationale": "too risky", "version": 1}
    response = client.post(reverse("reviews:vote", args=[case_id]), vote)
    assert response.status_code == 200
    html = response.content.decode()
    assert field_error(html, "rationale-error") == (
        "Not recorded: write a rationale of at least 3 words and 15 characters."
    )
    assert ">\ntoo risky</textarea>" in html  # what was written is still there
    assert 'value="reject" id="id_choice_1" required checked' in html  # and what was chosen
    assert not Vote.objects.exists()


def test_a_vote_without_a_choice_says_so_under_the_choices_and_keeps_the_rationale(client, post_report, alice):
    case_id = case_for(post_report)
    client.force_login(alice)
    response = client.post(reverse("reviews:vote", args=[case_id]), {"rationale": WHY, "version": 1})
    html = response.content.decode()
    assert field_error(html, "choice-error") == "Choose approve, reject or request changes."
    assert WHY in html.split('data-testid="vote-form"')[1]
    assert not Vote.objects.exists()


def test_a_vote_the_case_no_longer_takes_says_why(client, post_report, alice):
    case_id = case_for(post_report)
    client.force_login(alice)
    client.post(reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1})
    vote = {"choice": "reject", "rationale": WHY, "version": 1}
    response = client.post(reverse("reviews:vote", args=[case_id]), vote, follow=True)
    assert "You cannot vote: you already voted on this version." in response.content.decode()
    assert Vote.objects.count() == 1


def test_the_timeline_and_the_revision_diff(client, post_report, alice, bob):
    case_id = case_for(post_report, proposal="implement_idea: add a cache\nwith no expiry")
    services.vote_cast(case_id=case_id, member=bob, choice="request_changes", rationale="Say when entries expire.")
    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: add a cache\nexpiring hourly"))
    services.comment_add(case_id=case_id, author=alice, text="Better now.")
    client.force_login(alice)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert "-with no expiry" in html and "+expiring hourly" in html
    assert "revision r2 submitted; earlier votes void" in html
    assert "commented: Better now." in html
    assert "voted request_changes (version 1): Say when entries expire." in html  # decided version: visible


def test_customers_and_people_without_a_role_never_see_committee_data(client, post_report, customer_user, nobody):
    case_id = case_for(post_report)
    for user in (customer_user, nobody):
        client.force_login(user)
        for url in (reverse("reviews:queue"), reverse("reviews:case", args=[case_id])):
            assert client.get(url).status_code == 404
        response = client.post(
            reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}
        )
        assert response.status_code == 404
    assert not Vote.objects.exists()


def test_a_report_sent_with_a_key_names_the_key_and_its_owner_on_the_timeline(client, post_report, alice):
    case_id = case_for(post_report, "from-a-key", 30)
    client.force_login(alice)
    response = client.get(reverse("reviews:case", args=[case_id]))
    rows = [
        [cell.strip() for cell in row.split("</td><td>")]
        for row in response.content.decode().split('data-testid="timeline"')[1].split("</tbody>")[0].split("<tr>")[1:]
    ]
    whos = [row[1] for row in rows]
    whats = [row[2] for row in rows]
    assert whats[0].startswith("report from-a-key received (markdown); gate: hold")
    assert whos[0] == "API key key-1 (owner agent)"
    assert whats[1].startswith("report from-a-key:")  # the case opened for it, on the owner's account
    assert whos[1] == "agent"
    assert "system" not in whos[:2]


def queue_row(html: str, case_id: int) -> str:
    return html.split(f'data-case="{case_id}"')[1].split("</tr>")[0]


def test_the_queue_you_column_says_why_there_is_no_vote_to_cast(client, post_report, operator, alice, bob):
    theirs = case_for(post_report, "from-agent", 30)
    alices = services.report_ingest(raw=report_md("from-alice", severity=40).encode(), filename="a.md", user=alice)
    alices = alices.report.case_id
    services.vote_cast(case_id=theirs, member=bob, choice="approve", rationale=WHY)

    client.force_login(alice)
    html = client.get(reverse("reviews:queue")).content.decode()
    assert "can't vote (submitted)" in queue_row(html, alices)
    assert "not yet" in queue_row(html, theirs)
    client.force_login(bob)
    html = client.get(reverse("reviews:queue")).content.decode()
    assert ">voted<" in queue_row(html, theirs) and "not yet" in queue_row(html, alices)
    client.force_login(operator)  # operators read the queue but never vote
    html = client.get(reverse("reviews:queue")).content.decode()
    for case_id in (theirs, alices):
        assert queue_row(html, case_id).rstrip().endswith('<td><span class="muted">—</span></td>')


def test_a_policy_change_case_shows_no_severity_in_the_queue(client, operator, alice):
    from reviews.models import PolicyRule

    rule = PolicyRule.objects.get(name="severity-30-hold")
    change = services.policy_change_propose(
        by=operator, operation="change", rule_id=rule.pk, values={"severity_min": 25}, reason="Hold more reports."
    )
    client.force_login(alice)
    row = queue_row(client.get(reverse("reviews:queue")).content.decode(), change.case_id)
    assert '<td class="num"><span class="muted">—</span></td>' in row
    assert '<td class="num">0</td>' not in row


def test_a_vote_on_a_version_since_revised_is_refused_and_keeps_what_was_written(client, post_report, alice):
    case_id = case_for(post_report, "r1")
    client.force_login(alice)
    post_report(report_md("r2", severity=30, supersedes="r1", proposal="implement_idea: something else"))
    vote = {"choice": "approve", "rationale": "Read version one carefully.", "version": 1}
    response = client.post(reverse("reviews:vote", args=[case_id]), vote)
    html = response.content.decode()
    assert response.status_code == 200 and "the case changed since you opened it" in html
    assert ">\nRead version one carefully.</textarea>" in html
    assert 'name="version" value="2"' in html  # the next submit is for the version now shown
    assert not Vote.objects.exists()
