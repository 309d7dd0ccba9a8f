"""The decorator and the context manager against the live server: allow, hold
then a committee decision, deny, the kill switch between register and start, a
raising function, and retries after a dropped connection."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fsar_client import FSAR, AsyncPending, Conflict, Cost, Denied, Held, Pending

from .conftest import report_md

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def task_row(external_id: str):
    from tasks.models import ExecutionTask

    return ExecutionTask.objects.get(external_id=external_id)


def approve(case_id: int, *members) -> float:
    """Each member votes to approve through the committee's service; the time the decision committed."""
    from reviews import services

    for member in members:
        services.vote_cast(case_id=case_id, member=member, choice="approve", rationale=f"{member} checked the plan.")
    return time.monotonic()


def approve_and_close(case_id: int, *members) -> float:
    """`approve` from another thread, closing that thread's database connection after."""
    from django.db import connection

    try:
        return approve(case_id, *members)
    finally:
        connection.close()


def test_an_allowed_task_runs_and_is_finished_with_its_cost(fsar, agent_key):
    ran = []

    @fsar.task(
        "implement_idea",
        ai_model="llama-4-70b-2026-12",
        customer="cust_acme",
        key="idea_id",
        cost_from=lambda result: Cost(tokens=result["tokens"]),
    )
    def implement(idea_id: str, text: str) -> dict:
        ran.append(idea_id)
        fsar.cost(micros=1200)
        fsar.cost(micros=300)
        return {"tokens": 77}

    assert implement("idea-42", "add a cache") == {"tokens": 77}
    assert ran == ["idea-42"]
    task = task_row("idea-42")
    assert (task.status, task.task_type, task.ai_model, task.customer_ref) == (
        "succeeded",
        "implement_idea",
        "llama-4-70b-2026-12",
        "cust_acme",
    )
    assert (task.cost_micros, task.tokens) == (1500, 77)
    assert task.started_at is not None and task.duration_ms is not None and task.duration_ms >= 0
    assert task.submitted_by == agent_key[0]


def test_without_a_key_each_call_is_its_own_task(fsar):
    @fsar.task("self_improvement")
    def improve() -> str:
        return "done"

    assert improve() == "done" and improve() == "done"
    from tasks.models import ExecutionTask

    ids = list(ExecutionTask.objects.values_list("external_id", flat=True))
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i.startswith("self_improvement-") for i in ids)


def test_a_held_task_waits_for_two_approvals_and_runs_within_a_second_of_the_decision(fsar, requests_sent, alice, bob):
    report = fsar.submit_report(report_md("r-hold", severity=30))
    assert report.decision == "hold" and isinstance(report.case, int)
    started: dict[str, float] = {}
    outcome: dict[str, object] = {}

    @fsar.task("implement_idea", proposal_id="r-hold", key="idea_id", on_hold="wait", max_wait=60)
    def implement(idea_id: str) -> str:
        started["at"] = time.monotonic()
        return "implemented"

    def call() -> None:
        try:
            outcome["result"] = implement("idea-held")
        except BaseException as exc:  # reported to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    requests_sent.wait_for("GET", "/decision")
    time.sleep(1.0)  # the client is inside its long-poll now, not between polls
    assert task_row("idea-held").status == "held" and "at" not in started
    decided = approve(report.case, alice, bob)
    worker.join(timeout=30)
    assert outcome == {"result": "implemented"}
    assert started["at"] - decided < 1.0, f"ran {started['at'] - decided:.2f} s after the decision"
    # One long-poll answered the change: no polling storm.
    assert len(requests_sent.paths("GET", "/decision")) == 1
    task = task_row("idea-held")
    assert task.status == "succeeded" and task.gate_case == str(report.case)


def test_a_held_task_raises_held_with_the_case_and_the_same_key_later_runs_once_approved(fsar, alice, bob):
    report = fsar.submit_report(report_md("r-raise", severity=30))
    ran = []

    @fsar.task("implement_idea", proposal_id="r-raise", key=lambda idea: idea["id"], on_hold="raise")
    def implement(idea: dict) -> str:
        ran.append(idea["id"])
        return "ok"

    with pytest.raises(Held) as held:
        implement({"id": "idea-7"})
    assert held.value.case == report.case and held.value.task_id == task_row("idea-7").pk
    assert held.value.body["status"] == "held"  # the server's JSON
    assert "waiting for the committee" in held.value.reason
    assert ran == []
    approve(report.case, alice, bob)
    assert implement({"id": "idea-7"}) == "ok"
    assert ran == ["idea-7"]
    from tasks.models import ExecutionTask

    assert ExecutionTask.objects.filter(external_id="idea-7").count() == 1


def test_waiting_gives_up_after_max_wait_with_held(fsar, requests_sent):
    report = fsar.submit_report(report_md("r-patience", severity=30))

    @fsar.task("implement_idea", proposal_id="r-patience", key="n", max_wait=2)
    def implement(n: int) -> None:
        raise AssertionError("must not run while held")

    with pytest.raises(Held, match="still held after waiting 2 s") as held:
        implement(1)
    assert held.value.case == report.case
    assert requests_sent.paths("GET", "/decision")  # it did wait, on the long-poll


def test_deferred_hold_returns_a_pending_handle_that_resumes_after_approval(fsar, alice, bob):
    report = fsar.submit_report(report_md("r-defer", severity=30))

    @fsar.task("implement_idea", proposal_id="r-defer", key="n", on_hold="defer")
    def implement(n: int) -> int:
        return n * 2

    pending = implement(21)
    assert isinstance(pending, Pending) and pending.decision.held and pending.decision.case == report.case
    approve(report.case, alice, bob)
    assert pending.status().status == "registered"
    assert pending.resume(max_wait=10) == 42
    assert task_row("21").status == "succeeded"


def test_a_denied_task_raises_denied_with_reason_and_policy_and_does_not_run(fsar):
    from reviews import services
    from reviews.models import PolicyRule

    PolicyRule.objects.create(name="blocked-customer", priority=5, customers=["blocked-co"], action="deny")
    services.rules_changed(why="test")
    ran = []

    @fsar.task("implement_idea", customer="blocked-co")
    def implement() -> None:
        ran.append(1)

    with pytest.raises(Denied) as denied:
        implement()
    assert denied.value.policy == "blocked-customer" and denied.value.case is None
    assert "blocked-co" in denied.value.reason
    assert denied.value.body["gate"]["decision"] == "deny"
    assert ran == []


def test_a_held_task_rejected_by_the_committee_raises_denied_with_the_case(fsar, requests_sent, alice):
    from reviews import services

    report = fsar.submit_report(report_md("r-reject", severity=30))
    outcome: dict[str, object] = {}

    @fsar.task("implement_idea", proposal_id="r-reject", on_hold="wait", max_wait=60)
    def implement() -> None:
        outcome["ran"] = True

    def call() -> None:
        try:
            implement()
        except Denied as exc:
            outcome["denied"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    requests_sent.wait_for("GET", "/decision")
    services.vote_cast(case_id=report.case, member=alice, choice="reject", rationale="Too risky for now.")
    worker.join(timeout=30)
    denied = outcome["denied"]
    assert isinstance(denied, Denied) and "ran" not in outcome
    assert denied.case == report.case and "Too risky for now." in denied.reason


def test_the_kill_switch_pulled_between_register_and_start_keeps_the_function_from_running(
    live_fsar, agent_key, operator
):
    """An operator pauses the gate after the task was allowed and before the client
    starts it: `start` refuses (409), the client reads the new decision (held by
    the pause) and does not run the function."""
    import httpx

    from reviews import services

    def pull_the_kill_switch(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/api/v1/tasks":
            assert response.status_code == 201 and json.loads(response.read())["gate"]["decision"] == "allow"
            services.gate_pause(by=operator, reason="incident 7: runaway costs")

    _, secret = agent_key
    client = FSAR(live_fsar.url, secret, http_client=httpx.Client(event_hooks={"response": [pull_the_kill_switch]}))
    ran = []

    @client.task("implement_idea", key="n", on_hold="raise")
    def implement(n: int) -> None:
        ran.append(n)

    with pytest.raises(Held) as held:
        implement(1)
    assert ran == []
    assert "paused" in held.value.reason
    assert task_row("1").status == "held"


def test_a_raising_function_finishes_failed_with_the_error_and_re_raises(fsar):
    @fsar.task("implement_idea", key="n")
    def implement(n: int) -> None:
        fsar.cost(micros=50, tokens=5)
        raise ValueError(f"model exploded on {n}")

    with pytest.raises(ValueError, match="model exploded on 3"):
        implement(3)
    task = task_row("3")
    assert task.status == "failed"
    assert task.error == "ValueError: model exploded on 3"
    assert (task.cost_micros, task.tokens) == (50, 5)


def test_retries_after_dropped_connections_leave_exactly_one_task(live_fsar, agent_key, dropping_proxy):
    # The registration's and the start's answers are lost on the way back, after the
    # server stored them; the client retries both with the same external_id and task.
    dropping_proxy.drop("POST /api/v1/tasks ", times=1)
    dropping_proxy.drop("POST /api/v1/tasks/", times=1)  # the start (the next POST under /tasks/)
    _, secret = agent_key
    client = FSAR(dropping_proxy.url, secret)
    ran = []

    @client.task("implement_idea", ai_model="m1")
    def implement() -> str:
        ran.append(1)
        return "ok"

    assert implement() == "ok"
    assert ran == [1]
    # The door was reached: both answers were dropped after the server acted ...
    registration, start = dropping_proxy.dropped
    assert registration == b"POST /api/v1/tasks HTTP/1.1" and start.endswith(b"/start HTTP/1.1")
    registrations = [line for line in dropping_proxy.forwarded if line == b"POST /api/v1/tasks HTTP/1.1"]
    assert len(registrations) == 2
    # ... and still exactly one task exists, finished once.
    from tasks.models import ExecutionTask

    task = ExecutionTask.objects.get()
    assert task.status == "succeeded"
    client.close()


def test_a_task_that_already_ran_under_a_key_is_not_run_again(fsar):
    @fsar.task("implement_idea", key="n")
    def implement(n: int) -> int:
        return n

    assert implement(5) == 5
    with pytest.raises(Conflict, match="already succeeded"):
        implement(5)


def test_the_context_manager_runs_a_block_as_a_task(fsar):
    with fsar.task_context("idea_implementation", ai_model="m2", key="block-1") as t:
        t.cost(micros=10)
        fsar.cost(tokens=3)
        assert t.decision.status == "running"
    task = task_row("block-1")
    assert (task.status, task.cost_micros, task.tokens, task.task_type) == ("succeeded", 10, 3, "idea_implementation")
    with pytest.raises(RuntimeError), fsar.task_context("idea_implementation", key="block-2"):
        raise RuntimeError("no disk")
    assert (task_row("block-2").status, task_row("block-2").error) == ("failed", "RuntimeError: no disk")


def test_the_async_decorator_and_context_manager(fsar, alice, bob, requests_sent):
    report = fsar.submit_report(report_md("r-async", severity=30))

    @fsar.task("implement_idea", key="n")
    async def implement(n: int) -> int:
        await asyncio.sleep(0)
        fsar.cost(micros=n)
        return n + 1

    @fsar.task("implement_idea", key="n", proposal_id="r-async", on_hold="defer")
    async def held(n: int) -> int:
        return n * 10

    async def scenario() -> tuple:
        first = await implement(1)
        async with fsar.task_context("self_improvement", key="async-block") as t:
            t.cost(tokens=9)
        pending = await held(7)
        assert isinstance(pending, AsyncPending) and pending.decision.held
        waiting = asyncio.ensure_future(pending.resume(max_wait=30))
        while not requests_sent.paths("GET", "/decision"):
            await asyncio.sleep(0.05)
        await asyncio.get_running_loop().run_in_executor(None, approve_and_close, report.case, alice, bob)
        return first, await waiting

    # In a thread of its own: in the full run Playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, scenario()).result(timeout=120) == (2, 70)
    assert (task_row("1").status, task_row("1").cost_micros) == ("succeeded", 1)
    assert (task_row("async-block").status, task_row("async-block").tokens) == ("succeeded", 9)
    assert task_row("7").status == "succeeded"
