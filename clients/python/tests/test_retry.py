"""Retries, backoff and the long-poll loop, driven step by step: the client's
logic yields each request and each sleep (fsar_client._protocol), so these
tests answer them directly and read the sleeps instead of sleeping."""

from __future__ import annotations

import random

import httpx
import pytest

from fsar_client import API_VERSION, FSAR, GateUnavailable, InvalidInput, __version__
from fsar_client import _protocol as p


def answer(status: int, body: dict | None = None, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(
        status, json=body or {}, headers=headers, request=httpx.Request("GET", "http://fsar.test/api/v1/x")
    )


def held(version: str = "v1") -> dict:
    return {"task_id": 1, "external_id": "e", "status": "held", "gate": {"decision": "hold"}, "version": version}


def test_a_503_is_retried_no_sooner_than_its_retry_after_with_jitter():
    retry = p.Retry(attempts=3, rng=random.Random(1))
    flow = p.send(p.Call("POST", "/tasks"), retry)
    assert isinstance(next(flow), p.Call)
    sleep = flow.send(answer(503, {"detail": "gate busy"}, {"Retry-After": "7"}))
    assert isinstance(sleep, p.Sleep) and 7 <= sleep.seconds <= 7 * 1.2
    assert isinstance(flow.send(None), p.Call)
    with pytest.raises(StopIteration) as done:
        flow.send(answer(201, {"ok": True}))
    assert done.value.value.status_code == 201


def test_many_clients_told_the_same_retry_after_do_not_come_back_together():
    delays = {p.Retry(rng=random.Random(seed)).after(5, 1) for seed in range(20)}
    assert len(delays) == 20 and min(delays) >= 5


def test_backoff_doubles_with_jitter_and_is_capped():
    retry = p.Retry(base=0.5, cap=4, rng=random.Random(3))
    for attempt, ceiling in ((1, 0.5), (2, 1), (3, 2), (4, 4), (8, 4)):
        delay = retry.backoff(attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_a_dropped_connection_is_retried_then_gives_up_as_gate_unavailable():
    flow = p.send(p.Call("POST", "/tasks"), p.Retry(attempts=2, rng=random.Random(0)))
    next(flow)
    assert isinstance(flow.throw(httpx.RemoteProtocolError("Server disconnected")), p.Sleep)
    next(flow)
    with pytest.raises(GateUnavailable, match="after 2 attempts") as error:
        flow.throw(httpx.ReadTimeout("timed out"))
    assert error.value.status_code is None and error.value.body is None
    assert isinstance(error.value.__cause__, httpx.ReadTimeout)


def test_a_429_that_stays_429_ends_as_gate_unavailable_with_the_servers_json():
    flow = p.send(p.Call("GET", "/tasks/1/decision"), p.Retry(attempts=1))
    next(flow)
    with pytest.raises(GateUnavailable) as error:
        flow.send(answer(429, {"detail": "Rate limit exceeded"}, {"Retry-After": "30"}))
    assert error.value.status_code == 429 and error.value.retry_after == 30
    assert error.value.body == {"detail": "Rate limit exceeded"}


def test_bad_input_is_not_retried():
    flow = p.send(p.Call("POST", "/tasks"), p.Retry())
    next(flow)
    with pytest.raises(InvalidInput) as error:
        flow.send(answer(422, {"detail": "task_type: bad", "errors": [{"field": "task_type", "message": "bad"}]}))
    assert error.value.field == "task_type"


def test_retry_after_as_an_http_date_is_understood():
    response = answer(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert p.retry_after_seconds(response) == 0.0  # in the past: retry now
    assert p.retry_after_seconds(answer(503, headers={"Retry-After": "soon"})) is None


def test_the_wait_backs_off_when_the_server_answers_unchanged_at_once():
    """A server that allows no waiting (TASK_DECISION_MAX_WAIT_SECONDS=0) answers
    each long-poll at once: the client sleeps between calls instead of storming it."""
    fsar = FSAR("http://fsar.test", "fsar_x")
    flow = fsar._wait_flow(1, max_wait=120)
    call = next(flow)
    assert call.params == {"wait": 30} and call.path == "/tasks/1/decision"
    sleeps = []
    effect = flow.send(answer(200, held()))
    for _ in range(4):
        assert isinstance(effect, p.Sleep)
        sleeps.append(effect.seconds)
        assert isinstance(flow.send(None), p.Call)
        effect = flow.send(answer(200, held()))
    assert sleeps[0] > 0 and sleeps[-1] > sleeps[0]  # growing, jittered


def test_the_wait_returns_as_soon_as_the_task_is_not_held():
    fsar = FSAR("http://fsar.test", "fsar_x")
    flow = fsar._wait_flow(1, max_wait=120)
    next(flow)
    released = {**held("v2"), "status": "registered", "gate": {"decision": "allow", "case": "12"}}
    with pytest.raises(StopIteration) as done:
        flow.send(answer(200, released))
    decision = done.value.value
    assert decision.status == "registered" and decision.case == 12 and decision.version == "v2"


def test_the_api_root_is_found_from_either_form_of_the_url_and_the_environment(monkeypatch):
    assert FSAR("https://fsar.example.com/", "k").api_root == "https://fsar.example.com/api/v1"
    assert FSAR("https://fsar.example.com/api/v1", "k").api_root == "https://fsar.example.com/api/v1"
    monkeypatch.setenv("FSAR_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("FSAR_API_KEY", "fsar_env")
    assert FSAR().api_root == "http://127.0.0.1:8000/api/v1"
    monkeypatch.delenv("FSAR_API_KEY")
    with pytest.raises(ValueError, match="FSAR_API_KEY"):
        FSAR()


def test_case_ids_become_integers_from_either_form():
    from fsar_client.models import case_id

    assert [case_id(12), case_id("12"), case_id(None), case_id("case-7"), case_id(True)] == [12, 12, None, None, None]


def test_fsar_cost_outside_a_task_is_an_error():
    with pytest.raises(RuntimeError, match="outside a task"):
        FSAR.cost(micros=1)


def test_the_client_is_versioned_with_the_api():
    from importlib.metadata import version

    from fsar.api import api

    assert __version__ == version("fsar-client")
    assert __version__.split(".")[0] == API_VERSION == api.version
