"""The execution gate on POST /api/v1/tasks: policy rules, cases, release exactly
once, the kill switch, model metrics, the rules' edges. Failing closed (a database
error, a broken rule, the deadline): test_gate_fails_closed.py."""

import pytest

from fsar.testing import report_md
from reviews import selectors, services
from reviews.models import Case, CaseStatus, PolicyRule
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def live_task(external_id, ai_model, status, *, minute, duration_ms=1000, source="api"):
    """A task FSAR saw run (registered through the API, started and finished live),
    finished `minute` minutes after a fixed moment."""
    from datetime import UTC, datetime, timedelta

    finished = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return ExecutionTask.objects.create(
        external_id=external_id,
        task_type="implement_idea",
        ai_model=ai_model,
        status=status,
        source=source,
        started_at=finished - timedelta(milliseconds=duration_ms),
        finished_at=finished,
        duration_ms=duration_ms,
    )


def register(agent, external_id, **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", **fields}
    return agent.post("/api/v1/tasks", data=body, content_type="application/json")


def test_a_task_without_a_report_is_allowed_by_the_default_rule(agent):
    response = register(agent, "t1", ai_model="gpt-x")
    assert response.status_code == 201
    gate = response.json()["gate"]
    assert (gate["decision"], gate["policy"], gate["case"]) == ("allow", "default-allow", None)


def test_a_task_linked_to_a_held_report_is_held_with_it_and_released_when_approved(agent, post_report, alice):
    case_id = post_report(report_md("r1", severity=50)).json()["gate"]["case"]
    response = register(agent, "t1", proposal_id="r1")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "held"
    assert body["gate"]["decision"] == "hold"
    assert body["gate"]["case"] == case_id
    assert body["gate"]["case_status"] == "open"

    start = agent.post(f"/api/v1/tasks/{body['id']}/start")
    assert start.status_code == 409
    assert "gate closed" in start.json()["detail"]
    assert start.json()["case"] == case_id

    services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Reviewed the rollback plan.")
    task = agent.get(f"/api/v1/tasks/{body['id']}").json()
    assert task["status"] == "registered"
    assert task["gate"]["decision"] == "allow"
    assert task["gate"]["case_status"] == "approved"
    assert task["gate"]["rationale"] == "Reviewed the rollback plan."
    assert agent.post(f"/api/v1/tasks/{body['id']}/start").status_code == 200
    # Later tasks on the approved report run at once.
    assert register(agent, "t2", proposal_id="r1").json()["gate"]["decision"] == "allow"


def test_a_rejected_case_denies_its_waiting_tasks_exactly_once(agent, post_report, alice, bob):
    case_id = post_report(report_md("r1", block=True)).json()["gate"]["case"]
    ids = [register(agent, f"t{i}", proposal_id="r1").json()["id"] for i in range(3)]
    services.case_decide(case_id=case_id, decision="rejected", by=alice, rationale="Not safe.")
    assert set(ExecutionTask.objects.filter(pk__in=ids).values_list("status", flat=True)) == {TaskStatus.DENIED}
    history = ExecutionTask.history.filter(id=ids[0]).order_by("history_date")
    assert [h.status for h in history] == ["held", "denied"]
    assert history.last().history_user == alice
    with pytest.raises(services.NotAllowed):
        services.case_decide(case_id=case_id, decision="approved", by=bob, rationale="Changed my mind.")
    assert ExecutionTask.history.filter(id=ids[0]).count() == 2
    assert register(agent, "t9", proposal_id="r1").json()["gate"]["decision"] == "deny"


def test_a_denied_report_denies_its_tasks(agent, post_report):
    PolicyRule.objects.create(name="no-crypto", priority=1, proposal_words="crypto, mining", action="deny")
    assert post_report(report_md("r1", proposal="implement_idea: crypto mining")).json()["gate"]["decision"] == "deny"
    body = register(agent, "t1", proposal_id="r1").json()
    assert body["status"] == "denied"
    assert "its report r1 was denied" in body["gate"]["reason"]


def test_an_unknown_proposal_id_is_422_and_stores_nothing(agent):
    response = register(agent, "t1", proposal_id="ghost")
    assert response.status_code == 422
    assert response.json()["field"] == "proposal_id"
    assert "ghost" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_tasks_held_by_a_rule_share_one_case_per_rule_type_and_model(agent, alice):
    PolicyRule.objects.create(name="new-models", priority=1, ai_model_glob="exp-*", action="hold", quorum=1)
    a = register(agent, "t1", ai_model="exp-7").json()
    b = register(agent, "t2", ai_model="exp-7").json()
    c = register(agent, "t3", ai_model="exp-8").json()
    assert a["status"] == b["status"] == c["status"] == "held"
    assert a["gate"]["case"] == b["gate"]["case"] != c["gate"]["case"]
    assert "ai_model=exp-7" in a["gate"]["reason"]
    services.case_decide(case_id=int(a["gate"]["case"]), decision="approved", by=alice, rationale="Evaluated.")
    assert ExecutionTask.objects.get(pk=b["id"]).status == TaskStatus.REGISTERED
    assert ExecutionTask.objects.get(pk=c["id"]).status == TaskStatus.HELD
    # The approval covers later tasks of the same kind for its period.
    later = register(agent, "t4", ai_model="exp-7").json()
    assert later["gate"]["decision"] == "allow"
    assert "covered by the approval" in later["gate"]["reason"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_outside_a_transaction_a_hold_and_the_case_it_opens_commit_with_the_task_or_not_at_all(agent):
    # As in production: no test transaction around the request, so the gate is first
    # asked without one, and again inside one when its decision opens a case.
    PolicyRule.objects.create(name="new-models", priority=1, ai_model_glob="exp-*", action="hold", quorum=1)
    allowed = register(agent, "t1", ai_model="gpt-x").json()
    held = register(agent, "t2", ai_model="exp-1").json()
    assert (allowed["status"], held["status"]) == ("registered", "held")
    assert Case.objects.get(pk=int(held["gate"]["case"])).status == CaseStatus.OPEN
    assert [h.status for h in ExecutionTask.history.filter(external_id="t2")] == ["held"]
    # t1 again, now on a held model: the case the gate opened rolls back with the refused insert.
    conflicting = register(agent, "t1", ai_model="exp-2")
    assert conflicting.status_code == 409
    assert not Case.objects.filter(ai_model="exp-2").exists()
    assert ExecutionTask.objects.count() == 2


def test_rules_on_customer_and_model_failure_rate(agent, make_api_key):
    PolicyRule.objects.create(name="acme", priority=1, customers=["acme"], action="deny")
    PolicyRule.objects.create(
        name="flaky", priority=2, metric="failure_rate", metric_threshold=0.5, metric_window=4, action="deny"
    )
    assert register(agent, "t1", customer="acme").json()["gate"]["policy"] == "acme"
    outcomes = ["succeeded"] * 5 + ["failed", "failed", "failed", "succeeded"]  # only the last 4 count
    for i, outcome in enumerate(outcomes):
        live_task(f"m{i}", "shaky", outcome, minute=i)
    gate = register(agent, "t2", ai_model="shaky").json()["gate"]
    assert gate["decision"] == "deny" and gate["policy"] == "flaky"
    assert "failure_rate=0.75" in gate["reason"]
    assert register(agent, "t3", ai_model="steady").json()["gate"]["decision"] == "allow"


def test_a_rule_change_takes_effect_on_the_next_task(agent):
    assert register(agent, "t1").json()["gate"]["decision"] == "allow"
    rule = PolicyRule.objects.create(name="stop-ideas", priority=1, task_types=["implement_idea"], action="deny")
    assert register(agent, "t2").json()["gate"]["decision"] == "deny"
    rule.enabled = False
    rule.save()
    assert register(agent, "t3").json()["gate"]["decision"] == "allow"


def test_pausing_holds_every_new_task_and_resuming_decides_them_again(
    agent, operator, django_capture_on_commit_callbacks
):
    services.gate_pause(by=operator, reason="incident 42")
    body = register(agent, "t1").json()
    assert body["status"] == "held"
    assert body["gate"]["policy"] == "global-pause"
    assert "incident 42" in body["gate"]["reason"]
    with django_capture_on_commit_callbacks(execute=True):
        services.gate_resume(by=operator, reason="fixed")
    assert ExecutionTask.objects.get(pk=body["id"]).status == TaskStatus.REGISTERED
    assert [h.history_change_reason for h in selectors.gate_state().history.order_by("history_date")][-2:] == [
        "paused: incident 42",
        "resumed: fixed",
    ]


def test_an_advisory_case_can_be_escalated_to_a_hold(agent, post_report, alice):
    case_id = post_report(report_md("r1", severity=12)).json()["gate"]["case"]
    assert register(agent, "t1", proposal_id="r1").json()["status"] == "registered"
    services.case_escalate(case_id=case_id, by=alice, reason="Looks worse than it says.")
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN
    assert register(agent, "t2", proposal_id="r1").json()["status"] == "held"


def test_an_approval_lapses_and_the_next_task_reopens_the_case(agent, alice):
    import time_machine

    PolicyRule.objects.create(
        name="new-models", priority=1, ai_model_glob="exp-*", action="hold", approval_valid_hours=1
    )
    case_id = int(register(agent, "t1", ai_model="exp-1").json()["gate"]["case"])
    services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="ok")
    with time_machine.travel(Case.objects.get(pk=case_id).approved_until, tick=False):
        assert services.cases_expire() == 1
        assert Case.objects.get(pk=case_id).status == CaseStatus.EXPIRED
        later = register(agent, "t2", ai_model="exp-1").json()
    assert later["status"] == "held"
    assert later["gate"]["case"] == case_id
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN


def test_with_no_rules_at_all_the_built_in_defaults_apply(agent, post_report):
    PolicyRule.objects.all().delete()
    assert register(agent, "t1").json()["gate"]["policy"] == "default-allow"
    assert post_report(report_md("r1", severity=55)).json()["gate"]["policy"] == "severity-50-hold"


def test_when_every_rule_is_disabled_nothing_is_allowed_without_a_decision(agent):
    PolicyRule.objects.update(enabled=False)
    services.rules_changed()
    gate = register(agent, "t1").json()["gate"]
    assert gate["decision"] == "hold"
    assert gate["policy"] == "no-matching-rule"
    assert gate["case"] is not None


def test_the_gate_decides_a_plain_task_in_one_query_once_rules_are_cached(agent, django_assert_max_num_queries):
    from reviews.services import decide_task
    from tasks.models import ExecutionTask as Task

    task = Task(external_id="q1", task_type="implement_idea", ai_model="gpt-x", customer_ref="acme")
    decide_task(task)  # warm the rule cache
    with django_assert_max_num_queries(1):
        assert decide_task(task).decision == "allow"


def test_model_metrics_look_at_the_models_last_n_finished_tasks_only():
    from reviews.selectors import model_metric

    assert model_metric("exp-1", "failure_rate", 10) is None
    for n in range(10):  # oldest first: 10 failures, then 20 successes of 1..20 s
        live_task(f"m{n}", "exp-1", TaskStatus.FAILED, minute=n, duration_ms=500)
    for n in range(20):
        live_task(f"m{100 + n}", "exp-1", TaskStatus.SUCCEEDED, minute=100 + n, duration_ms=(n + 1) * 1000)
    ExecutionTask.objects.create(external_id="m200", task_type="implement_idea", ai_model="exp-1", status="running")
    live_task("m201", "exp-2", TaskStatus.FAILED, minute=1, duration_ms=99_000)
    assert model_metric("exp-1", "failure_rate", 20) == 0.0
    assert model_metric("exp-1", "failure_rate", 30) == pytest.approx(10 / 30)
    assert model_metric("exp-1", "failure_rate", 1000) == pytest.approx(10 / 30)
    assert model_metric("exp-1", "p95_duration_ms", 20) == 19_050.0  # percentile_cont: rank 18.05 of 0..19
    assert model_metric("exp-2", "p95_duration_ms", 5) == 99_000.0


@pytest.mark.parametrize(
    "durations",
    [
        [(n + 1) * 1000 for n in range(20)],
        [120, 130, 135, 150, 4_000, 9_999],
        [7],
        [50 * (n % 37) + n for n in range(230)],
    ],
)
def test_the_gates_p95_is_the_metrics_pages_p95_on_the_same_tasks(durations):
    """A threshold copied from the metrics page compares the same at the gate."""
    from datetime import UTC, datetime, timedelta

    from reviews.selectors import model_metric
    from tasks import metrics

    for n, duration in enumerate(durations):
        live_task(f"p{n}", "exp-p95", TaskStatus.SUCCEEDED, minute=n, duration_ms=duration)
    window = metrics.Window(datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=1))
    query = metrics.Query(window=window, by_model=True, by_type=False, ai_model="exp-p95")
    gate = model_metric("exp-p95", "p95_duration_ms", len(durations))
    for engine in ("python", metrics.exact_engine(), "auto"):
        (page,) = metrics.aggregate(query, engine=engine).values()
        assert page.figures()["p95_ms"] == round(gate, 1), engine


def test_the_last_n_are_the_last_to_finish_not_the_last_stored():
    from reviews.selectors import model_metric

    for n in range(4):  # stored first, finished last: the model's recent record
        live_task(f"recent{n}", "exp-1", TaskStatus.FAILED, minute=100 + n)
    for n in range(4):  # stored later (higher ids), finished earlier
        live_task(f"older{n}", "exp-1", TaskStatus.SUCCEEDED, minute=n)
    assert model_metric("exp-1", "failure_rate", 4) == 1.0
    assert model_metric("exp-1", "failure_rate", 8) == 0.5


@pytest.mark.parametrize("source", ["backfill", "legacy", None])
def test_model_metrics_count_only_tasks_fsar_saw_run(source):
    from reviews.selectors import model_metric

    live_task("live", "exp-1", TaskStatus.FAILED, minute=0)
    live_task("told", "exp-1", TaskStatus.SUCCEEDED, minute=1, source=source)
    assert model_metric("exp-1", "failure_rate", 10) == 1.0


@pytest.mark.postgres(reason="EXPLAIN of PostgreSQL query plans")
def test_a_model_metric_reads_only_finished_tasks_through_its_partial_index():
    from django.db import connection

    from reviews.selectors import model_metric

    ExecutionTask.objects.bulk_create(
        ExecutionTask(external_id=f"w{n}", task_type="implement_idea", ai_model="exp-1", status=status, source=source)
        for n, (status, source) in enumerate(
            [("succeeded", "api")] * 5 + [("registered", "api")] * 500 + [("failed", "backfill")] * 500
        )
    )
    calls = []

    def capture(execute, sql, params, many, context):
        calls.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        assert model_metric("exp-1", "failure_rate", 50) == 0.0
    ((sql, params),) = calls
    assert params == ["exp-1", 50]  # the statuses are in the SQL itself, as the partial index needs
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test-sized table would be read whole
        cursor.execute("PREPARE metric(text, int) AS " + sql.replace("%s", "$1", 1).replace("%s", "$2", 1))
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")  # as a prepared statement may
        cursor.execute("EXPLAIN EXECUTE metric('exp-1', 50)")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tasks_model_live_finished" in plan, plan


# The gate's own reading of the state, at its edges (each kills a mutant that survived
# the tests above: see docs/testing.md, "Mutation testing").


def test_a_lapsed_report_approval_holds_the_next_task_before_cases_expire_runs(agent, post_report, alice):
    """The gate compares `approved_until` itself: it does not wait for `cases_expire`
    to mark the case expired. Up to the last moment the approval covers the report;
    at `approved_until` it no longer does, and the case reopens."""
    import time_machine

    case_id = post_report(report_md("r1", severity=35)).json()["gate"]["case"]
    services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Reviewed the rollback plan.")
    approved_until = Case.objects.get(pk=case_id).approved_until
    from datetime import timedelta

    with time_machine.travel(approved_until - timedelta(seconds=1), tick=False):
        before = register(agent, "t1", proposal_id="r1").json()
    assert (before["status"], before["gate"]["decision"]) == ("registered", "allow")
    with time_machine.travel(approved_until, tick=False):
        at = register(agent, "t2", proposal_id="r1").json()
    assert (at["status"], at["gate"]["decision"], at["gate"]["case"]) == ("held", "hold", case_id)
    assert "waiting for the committee" in at["gate"]["reason"]
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN  # reopened by the gate, not by a job


def test_a_lapsed_task_case_approval_holds_the_next_task_before_cases_expire_runs(agent, alice):
    import time_machine

    PolicyRule.objects.create(
        name="new-models", priority=1, ai_model_glob="exp-*", action="hold", approval_valid_hours=1
    )
    case_id = int(register(agent, "t1", ai_model="exp-1").json()["gate"]["case"])
    services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Reviewed the model card.")
    approved_until = Case.objects.get(pk=case_id).approved_until
    from datetime import timedelta

    with time_machine.travel(approved_until - timedelta(seconds=1), tick=False):
        before = register(agent, "t2", ai_model="exp-1").json()
    assert (before["status"], before["gate"]["decision"]) == ("registered", "allow")
    assert f"covered by the approval of case {case_id}" in before["gate"]["reason"]
    with time_machine.travel(approved_until, tick=False):
        at = register(agent, "t3", ai_model="exp-1").json()
    assert (at["status"], at["gate"]["decision"], at["gate"]["case"]) == ("held", "hold", case_id)
    assert Case.objects.get(pk=case_id).status == CaseStatus.OPEN
    assert Case.objects.filter(kind=Case.Kind.TASKS, ai_model="exp-1").count() == 1  # reopened, not a new one


@pytest.mark.parametrize(
    ("severity", "policy"),
    [
        (9, "default-allow"),
        (10, "default-allow"),
        (29, "default-allow"),
        (30, "severity-30-hold"),
        (49, "severity-30-hold"),
        (50, "severity-50-hold"),
    ],
)
def test_the_default_severity_thresholds_are_inclusive_and_the_one_below_is_not_held(post_report, severity, policy):
    gate = post_report(report_md(f"r{severity}", severity=severity)).json()["gate"]
    assert gate["policy"] == policy
    assert gate["decision"] == ("allow" if policy == "default-allow" else "hold")
    if policy != "default-allow":
        assert Case.objects.get(pk=gate["case"]).quorum == (3 if severity >= 50 else 2)
    elif severity >= 10:
        assert Case.objects.get(pk=gate["case"]).status == CaseStatus.ADVISORY
    else:
        assert gate["case"] is None


@pytest.mark.parametrize(("severity", "matches"), [(39, False), (40, True), (45, True), (46, False)])
def test_a_severity_range_bounds_both_sides_inclusively(post_report, severity, matches):
    PolicyRule.objects.create(name="middle", priority=1, severity_min=40, severity_max=45, action="deny")
    services.rules_changed()
    gate = post_report(report_md(f"r{severity}", severity=severity)).json()["gate"]
    if matches:
        assert (gate["decision"], gate["policy"]) == ("deny", "middle")
        assert "severity_max=45" in gate["reason"] and "severity_min=40" in gate["reason"]
    else:
        assert (gate["decision"], gate["policy"]) == ("hold", "severity-30-hold")


@pytest.mark.parametrize(("severity", "matches"), [(44, True), (45, True), (46, False)])
def test_a_severity_max_alone_bounds_from_above(post_report, severity, matches):
    PolicyRule.objects.create(name="up-to-45", priority=1, severity_max=45, action="deny")
    services.rules_changed()
    gate = post_report(report_md(f"r{severity}", severity=severity)).json()["gate"]
    assert gate["policy"] == ("up-to-45" if matches else "severity-30-hold")


@pytest.mark.parametrize(("failures", "decision"), [(1, "allow"), (2, "allow"), (3, "deny")])
def test_a_model_metric_exactly_at_its_threshold_does_not_match(agent, failures, decision):
    """A metric rule matches when the value is above its threshold: 2 failures of 4
    is 0.5, at the threshold, and allowed."""
    PolicyRule.objects.create(
        name="flaky", priority=1, metric="failure_rate", metric_threshold=0.5, metric_window=4, action="deny"
    )
    services.rules_changed()
    for i in range(4):
        live_task(f"m{i}", "shaky", TaskStatus.FAILED if i < failures else TaskStatus.SUCCEEDED, minute=i)
    gate = register(agent, "t1", ai_model="shaky").json()["gate"]
    assert gate["decision"] == decision
    assert gate["policy"] == ("flaky" if decision == "deny" else "default-allow")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"action": "maybe"}, "unknown action"),
        ({"task_types": ["mine_crypto"]}, "unknown task type"),
        ({"customers": [7]}, "customers must be strings"),
        ({"metric": "vibes", "metric_threshold": 1, "metric_window": 5}, "unknown metric"),
        ({"metric": "failure_rate", "metric_window": 5}, "needs a threshold and a window"),
        ({"metric": "failure_rate", "metric_threshold": 0.5}, "needs a threshold and a window"),
        ({"metric": "failure_rate", "metric_threshold": 0.5, "metric_window": 0}, "needs a threshold and a window"),
        ({"severity_min": 41, "severity_max": 40}, "severity_min is above severity_max"),
        ({"action": "hold", "quorum": 0}, "a hold needs a quorum of at least 1"),
    ],
)
def test_a_rule_that_cannot_be_evaluated_is_refused_naming_the_problem(fields, problem):
    from reviews.policy import BrokenRule

    rule = PolicyRule(name="candidate", priority=1, **{"action": "deny", **fields})
    with pytest.raises(BrokenRule, match=problem):
        services.validate_rule(rule)


@pytest.mark.parametrize(
    "fields",
    [
        {"severity_min": 40, "severity_max": 40},
        {"action": "hold", "quorum": 1},
        {"metric": "failure_rate", "metric_threshold": 0.0, "metric_window": 1},
        {"task_types": ["implement_idea"], "customers": ["acme"]},
    ],
)
def test_a_rule_at_the_edge_of_what_is_valid_is_accepted(fields):
    services.validate_rule(PolicyRule(name="candidate", priority=1, **{"action": "deny", **fields}))


@pytest.mark.parametrize(("severity", "matches"), [(39, False), (40, True), (41, False)])
def test_a_single_severity_rule_matches_only_that_severity(post_report, severity, matches):
    PolicyRule.objects.create(name="exactly-40", priority=1, severity_min=40, severity_max=40, action="deny")
    services.rules_changed()
    gate = post_report(report_md(f"r{severity}", severity=severity)).json()["gate"]
    assert gate["policy"] == ("exactly-40" if matches else "severity-30-hold")


def test_a_linked_task_is_judged_by_its_reports_fields_under_the_current_rules(agent, post_report):
    """A report the rules let through (advisory) carries its severity, block flag and
    proposal to the tasks that name it: a rule added since decides on them."""
    post_report(report_md("r1", severity=12, proposal="implement_idea: mine some crypto"))
    PolicyRule.objects.create(name="teens", priority=1, severity_min=11, severity_max=13, action="deny")
    services.rules_changed()
    gate = register(agent, "t1", proposal_id="r1").json()["gate"]
    assert (gate["decision"], gate["policy"]) == ("deny", "teens")
    assert "severity=12" in gate["reason"]
    assert register(agent, "t2").json()["gate"]["decision"] == "allow"  # no report: no severity to match


def test_a_task_whose_report_was_deleted_since_cannot_start(agent, post_report):
    from reviews.models import Report

    post_report(report_md("r1", severity=5))
    task = register(agent, "t1", proposal_id="r1").json()
    assert (task["status"], task["gate"]["decision"]) == ("registered", "allow")
    Report.objects.filter(report_id="r1").delete()
    response = agent.post(f"/api/v1/tasks/{task['id']}/start")
    assert response.status_code == 409
    assert "its report r1 no longer exists" in response.json()["detail"]
    assert ExecutionTask.objects.get(pk=task["id"]).status == TaskStatus.DENIED


def test_a_start_refused_on_the_case_that_allowed_the_task_says_what_changed_it(agent, post_report, alice):
    case_id = post_report(report_md("r1", severity=35)).json()["gate"]["case"]
    services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Reviewed the rollback plan.")
    task = register(agent, "t1", proposal_id="r1").json()
    assert (task["gate"]["decision"], task["gate"]["case"]) == ("allow", case_id)
    services.case_revoke(case_id=case_id, by=alice, rationale="The rollback plan was never tested.")
    response = agent.post(f"/api/v1/tasks/{task['id']}/start")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"waiting for the committee (case {case_id}); since the task was allowed: " in detail
    assert "The rollback plan was never tested." in detail
    assert "since the task was allowed" in ExecutionTask.objects.get(pk=task["id"]).gate_reason
