"""How a report is stored (reviews.services.intake): first, with no look for an
earlier report; outside a transaction in one statement with its history row when
it writes nothing else (PostgreSQL); inside one with its case otherwise. And the
answer to a new report is the report as stored, not read back: it must be what a
GET answers."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fsar.testing import report_md
from reviews import policy, services
from reviews.models import Case, CaseStatus, Report

# As in production, no test transaction around the request: a report that writes only
# itself is stored outside one.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _statements(queries) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in queries]


@pytest.mark.postgres(reason="a new row and its history row in one statement is PostgreSQL's (core.history)")
def test_an_allowed_report_is_one_statement_committed_with_its_history_row(post_report):
    with CaptureQueriesContext(connection) as queries:
        response = post_report(report_md("r1"))
    assert response.status_code == 201, response.content
    writes = [q["sql"] for q in queries if "reviews_report" in q["sql"] and "INSERT" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("WITH new_row AS (INSERT INTO")
    # No transaction of its own, and no look for an earlier report before the insert.
    assert not {"BEGIN", "SAVEPOINT", "COMMIT"} & set(_statements(queries))
    assert not any("reviews_report" in q["sql"] and '"report_id" = ' in q["sql"] for q in queries)
    report = Report.objects.get(report_id="r1")
    (history,) = Report.history.filter(report_id="r1")
    assert (history.history_type, history.history_change_reason) == ("+", "received (markdown); gate: allow")
    assert history.history_user == report.submitted_by.owner


def test_the_history_row_is_the_one_simple_history_writes(post_report, agent_user):
    """The database's copy (core.history) against simple-history's own signal, field by field."""
    assert post_report(report_md("r1", severity=30)).status_code == 201  # held: a case, in a transaction
    assert post_report(report_md("r2")).status_code == 201  # allowed: one statement on PostgreSQL
    for report_id in ("r1", "r2"):
        stored = Report.objects.get(report_id=report_id)
        copied = Report.history.get(report_id=report_id)
        twin = Report.objects.get(report_id=report_id)
        twin.pk, twin.report_id = None, f"{report_id}-by-signal"
        twin._history_user = stored.submitted_by.owner
        twin._change_reason = copied.history_change_reason
        twin.save()  # simple-history's post_save receiver writes this one
        by_signal = Report.history.get(report_id=f"{report_id}-by-signal")
        skip = {"history_id", "history_date", "id", "report_id"}
        fields = [f.attname for f in Report.history.model._meta.concrete_fields if f.attname not in skip]
        assert fields and {f: getattr(copied, f) for f in fields} == {f: getattr(by_signal, f) for f in fields}
        assert copied.id == stored.pk


def test_a_held_report_sent_again_answers_200_and_opens_no_second_case(post_report):
    first = post_report(report_md("r1", severity=30))
    assert first.status_code == 201
    again = post_report(report_md("r1", severity=30))
    assert again.status_code == 200
    assert again.json() == first.json() | {"gate": again.json()["gate"]}
    assert again.json()["gate"]["case"] == first.json()["gate"]["case"]
    # The retry was decided and its case opened before the unique key refused it: all rolled back.
    assert Case.objects.count() == 1
    assert Report.objects.count() == 1
    assert Report.history.count() == 1


def test_the_same_id_with_an_unknown_supersedes_is_still_a_conflict(post_report):
    """Looked for after the store fails, the earlier report still answers first: 409
    naming the field, not the 422 of an unknown report to revise."""
    assert post_report(report_md("r1")).status_code == 201
    response = post_report(report_md("r1", supersedes="ghost"))
    assert response.status_code == 409
    assert response.json()["fields"] == ["supersedes"]


def test_a_stored_report_sent_again_answers_200_while_the_gate_cannot_decide(post_report, monkeypatch):
    assert post_report(report_md("r1")).status_code == 201

    def broken(rules, subject):
        raise policy.BrokenRule("rule 'x': unknown action 'maybe'")

    monkeypatch.setattr(policy, "first_match", broken)
    assert post_report(report_md("r1")).status_code == 200
    new = post_report(report_md("r2"))
    assert new.status_code == 503
    assert not Report.objects.filter(report_id="r2").exists()
    assert Case.objects.count() == 0


def test_the_answer_to_a_new_report_is_what_get_answers(agent, post_report, alice):
    """Allowed, held (a case), advisory, denied by a rule, a revision joining its case,
    and one held for a rejected precedent: the POST's body is the GET's."""
    from reviews.models import PolicyRule

    PolicyRule.objects.create(name="no-crypto", priority=1, proposal_words="crypto", action="deny")
    rejected = post_report(report_md("p0", severity=30, proposal="implement_idea: scrape everything")).json()
    services.case_decide(case_id=rejected["gate"]["case"], decision="rejected", by=alice, rationale="Not this one.")
    sent = [
        report_md("a1"),
        report_md("h1", severity=30),
        report_md("v1", severity=10),
        report_md("d1", proposal="implement_idea: mine crypto"),
        report_md("h2", severity=30, supersedes="h1", proposal="implement_idea: a cache with rollback"),
        report_md("p1", severity=1, proposal="implement_idea: scrape   everything"),
    ]
    for text in sent:
        response = post_report(text)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body == agent.get(f"/api/v1/proposals/{body['id']}").json()
    gates = {r.report_id: (r.gate_decision, r.case.status if r.case else None) for r in Report.objects.all()}
    assert gates["a1"] == ("allow", None)
    assert gates["h1"] == gates["h2"] == ("hold", CaseStatus.OPEN)
    assert gates["v1"] == ("allow", CaseStatus.ADVISORY)
    assert gates["d1"] == ("deny", None)
    assert gates["p1"] == ("hold", CaseStatus.OPEN)


def test_the_gate_state_and_rejected_precedent_read_together_as_apart(post_report):
    """selectors.gate_state_and_rejected_precedent (one round trip on PostgreSQL)
    answers what gate_state() and rejected_precedent() answer: no precedent, the
    latest rejected one, and with the gate's row missing, the closed stand-in."""
    from reviews import selectors
    from reviews.models import GateState
    from reviews.services.intake import fingerprint

    fp = fingerprint("the same proposal")

    def both_ways():
        state, precedent = selectors.gate_state_and_rejected_precedent(fp)
        apart = selectors.gate_state(), selectors.rejected_precedent(fp)
        # (the stand-in for a missing row has a fresh rules version on every read)
        assert (state.pk, state.paused, state.reason) == (apart[0].pk, apart[0].paused, apart[0].reason)
        assert state.rules_version == apart[0].rules_version or state.pk is None
        assert (precedent and (precedent.pk, precedent.report_id, precedent.case_id)) == (
            apart[1] and (apart[1].pk, apart[1].report_id, apart[1].case_id)
        )
        return state, precedent

    assert both_ways()[1] is None
    for report_id in ("r1", "r2"):
        assert post_report(report_md(report_id, severity=30, proposal="the same proposal")).status_code == 201
        Case.objects.filter(reports__report_id=report_id).update(status=CaseStatus.REJECTED)
    state, precedent = both_ways()
    assert precedent.report_id == "r2" and not state.paused
    # A later report with the same proposal whose case is not rejected (held for the
    # precedent: its case is open) is not one: still the latest rejected.
    assert post_report(report_md("r3", severity=30, proposal="the same proposal")).status_code == 201
    assert Report.objects.get(report_id="r3").case.status == CaseStatus.OPEN
    assert both_ways()[1].report_id == "r2"
    with CaptureQueriesContext(connection) as queries:
        selectors.gate_state_and_rejected_precedent(fp)
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)
    GateState.objects.all().delete()
    state, precedent = both_ways()
    assert state.paused and state.pk is None and precedent.report_id == "r2"


@pytest.mark.postgres(reason="a new case and the report in it in one statement is PostgreSQL's (data-modifying CTEs)")
def test_a_held_report_is_one_statement_with_its_new_case_and_both_history_rows(post_report, monkeypatch):
    from reviews.services import common

    enqueued = []
    monkeypatch.setattr(common, "enqueue_on_commit", lambda path, *args: enqueued.append((path, *args)))
    with CaptureQueriesContext(connection) as queries:
        response = post_report(report_md("r1", severity=30))
    assert response.status_code == 201, response.content
    writes = [q["sql"] for q in queries if "INSERT" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("WITH new_case AS (INSERT INTO")
    assert not {"BEGIN", "SAVEPOINT", "COMMIT"} & set(_statements(queries))  # it commits alone
    report = Report.objects.select_related("case").get(report_id="r1")
    case = report.case
    assert response.json()["gate"]["case"] == case.pk and response.json()["gate"]["case_status"] == "open"
    assert (case.kind, case.status, case.title, case.severity) == ("report", "open", "Report r1", 30)
    assert enqueued == [("reviews.jobs.case_opened", case.pk)]  # once committed
    owner = report.submitted_by.owner
    (report_history,) = Report.history.filter(report_id="r1")
    assert (report_history.history_type, report_history.history_user, report_history.case_id) == ("+", owner, case.pk)
    assert report_history.history_change_reason == "received (markdown); gate: hold"
    (case_history,) = Case.history.filter(id=case.pk)
    assert (case_history.history_type, case_history.history_user) == ("+", owner)
    assert case_history.history_change_reason.startswith("report r1: ")
    fields = [f.attname for f in Case._meta.concrete_fields]
    assert {f: getattr(case_history, f) for f in fields} == {f: getattr(case, f) for f in fields}


@pytest.mark.postgres(reason="a new case and the report in it in one statement is PostgreSQL's (data-modifying CTEs)")
def test_a_held_report_refused_by_the_database_leaves_no_case(post_report, monkeypatch):
    """The one statement is all or nothing: a report row the database refuses takes its case with it."""
    from reviews.services import common

    enqueued = []
    monkeypatch.setattr(common, "enqueue_on_commit", lambda path, *args: enqueued.append((path, *args)))
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reviews_report ADD CONSTRAINT test_refuse CHECK (report_id <> 'r1')")
    try:
        response = post_report(report_md("r1", severity=30))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE reviews_report DROP CONSTRAINT test_refuse")
    assert response.status_code == 503
    assert (Case.objects.count(), Case.history.count(), Report.objects.count(), Report.history.count()) == (0, 0, 0, 0)
    assert enqueued == []


def test_a_report_names_its_key_and_history_user_without_database_constraints(
    post_report, api_key, make_api_key, django_user_model
):
    """Migration 0014: no foreign key constraint checks a report's key, nor its history
    row's user, when it commits (each was a lookup planned anew per report); the key's
    column stays indexed, and deleting a key or a user through the ORM still clears them
    (Django's SET_NULL). On PostgreSQL the report table keeps no LIKE-prefix
    (varchar_pattern_ops) index, which cost every report three index entries."""
    assert post_report(report_md("r1")).status_code == 201
    assert post_report(report_md("r2")).status_code == 201
    history = Report.history.model._meta.db_table
    with connection.cursor() as cursor:
        on_report = connection.introspection.get_constraints(cursor, Report._meta.db_table)
        on_history = connection.introspection.get_constraints(cursor, history)
    on_key = [c for c in on_report.values() if c["columns"] == ["submitted_by_id"]]
    assert on_key and not [c for c in on_key if c["foreign_key"]], on_key
    assert [c for c in on_key if c["index"]], on_key
    assert not [c for c in on_history.values() if c["foreign_key"] and c["columns"] == ["history_user_id"]]
    # The other foreign keys keep their constraints.
    assert [c for c in on_report.values() if c["foreign_key"] and c["columns"] == ["case_id"]]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [Report._meta.db_table])
            definitions = [row[0] for row in cursor.fetchall()]
        assert definitions and not [d for d in definitions if "pattern_ops" in d], definitions
    other_key, _ = make_api_key()
    other_user = django_user_model.objects.create_user(username="someone-else")
    Report.objects.filter(report_id="r1").update(submitted_by=other_key)
    Report.history.filter(report_id="r1").update(history_user=other_user)
    other_key.delete()
    other_user.delete()
    assert Report.objects.get(report_id="r1").submitted_by_id is None
    assert Report.history.get(report_id="r1").history_user_id is None
    assert Report.objects.get(report_id="r2").submitted_by_id == api_key[0].pk
    assert Report.history.get(report_id="r2").history_user_id == api_key[0].owner_id


@pytest.mark.postgres(reason="a report stored on an assumed decision is PostgreSQL's one-statement path")
def test_a_report_decided_on_the_cached_rules_is_stored_only_if_they_and_no_precedent_hold(post_report, alice):
    """With the rules cached, a report that writes only itself is decided without a read
    and stored with one statement that checks the gate's rules version and that no
    rejected report has its proposal; when either does not hold, nothing is written by it
    and the report is decided on what is read: the same decisions as reading first."""
    from reviews.models import PolicyRule

    def stored(report_id, **fields):
        with CaptureQueriesContext(connection) as queries:
            response = post_report(report_md(report_id, **fields))
        assert response.status_code == 201, response.content
        return response.json()["gate"], [q["sql"] for q in queries if "reviews_" in q["sql"]]

    stored("warm-up")  # the rules are read and cached
    gate, sqls = stored("a1")
    assert gate["decision"] == "allow"
    (only,) = sqls  # no read of the gate's state before it: one statement, committed alone
    assert only.startswith("WITH new_row AS (INSERT INTO") and "reviews_gatestate" in only
    (history,) = Report.history.filter(report_id="a1")
    assert history.history_change_reason == "received (markdown); gate: allow"
    assert Report.objects.get(report_id="a1").pk == gate_report_pk("a1")
    # A rule added: the cached rules are stale, the statement writes nothing, and the
    # report is decided on the new rules.
    PolicyRule.objects.create(name="no-crypto", priority=1, proposal_words="crypto", action="deny")
    gate, sqls = stored("d1", proposal="implement_idea: mine crypto")
    assert (gate["decision"], gate["policy"]) == ("deny", "no-crypto")
    assert len(sqls) > 1
    gate, sqls = stored("d2", proposal="implement_idea: more crypto")  # cached again: one statement
    assert (gate["decision"], gate["policy"], len(sqls)) == ("deny", "no-crypto", 1)
    # A rejected precedent: the statement writes nothing, and the report is held for it.
    held, _ = stored("h1", severity=30, proposal="implement_idea: the same thing")
    services.case_decide(case_id=held["case"], decision="rejected", by=alice, rationale="No.")
    gate, sqls = stored("h2", proposal="implement_idea: the same thing")
    assert (gate["decision"], gate["rejected_precedent"]) == ("hold", "h1")
    assert gate["case"] not in (None, held["case"]) and len(sqls) > 1
    assert list(Report.objects.order_by("id").values_list("report_id", flat=True)) == [
        "warm-up", "a1", "d1", "d2", "h1", "h2",
    ]  # fmt: skip
    assert Report.history.count() == 6


def gate_report_pk(report_id: str) -> int:
    return Report.history.get(report_id=report_id).id
