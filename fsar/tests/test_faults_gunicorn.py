"""Faults injected for real (d): a gunicorn worker SIGKILLed mid-request, and one
after committing a held task and before answering.

PostgreSQL only (CI's PostgreSQL pass), with `redis-server` on PATH; the processes,
ports and checks are in fsar/tests/faults_support.py. How the test was checked
against the protection it tests is written in docs/testing.md.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from fsar.tests import faults_support
from fsar.tests.faults_support import (
    Gunicorn,
    assert_registered_once_each,
    eventually,
    process_env,
    registration,
    worker_talking_to,
)

# The fixtures of fsar/tests/faults_support.py this module uses (pytest finds them here).
agent_secret, redis_server, started = faults_support.agent_secret, faults_support.redis_server, faults_support.started

pytestmark = [
    pytest.mark.postgres(reason="kills PostgreSQL connections, Redis and workers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.xdist_group("faults"),  # one xdist worker runs them one after another (docs/testing.md)
]


def test_gunicorn_worker_killed_mid_request_leaves_no_partial_rows(started, redis_server, agent_secret):
    """16 clients register while one gunicorn worker is SIGKILLed at random, and
    another is SIGKILLed after committing a held task and before answering (it waits
    on a paused Redis to enqueue the case's notification). Each client whose
    connection broke sends the same request again: the retry answers 200 with the
    task that was committed (or 201 when nothing was); no task lacks its history
    row or its case.

    Protection: registration commits the task, its history row and its case in one
    transaction, and a repeated external_id answers the stored task (tasks/services.py)."""
    from tasks.models import ExecutionTask

    server = Gunicorn(process_env(redis_server), workers=3)
    started.append(server)
    headers = {"Authorization": f"Bearer {agent_secret}"}
    # Enough registrations that the burst outlasts the kills on a quiet machine too.
    ids = [f"killed-{i}" for i in range(16 * 40)]
    answers: dict[str, dict] = {}
    broken: list[str] = []
    errors: list[BaseException] = []

    def register(http: httpx.Client, i: int, external_id: str) -> None:
        # Allowed models only: a held one would enqueue on Redis, which the victim's step pauses.
        for _attempt in range(5):
            try:
                response = http.post("/api/v1/tasks", json=registration(external_id, i, held_every=0))
            except httpx.TransportError:
                broken.append(external_id)
                continue
            assert response.status_code in (200, 201), response.text
            answers[external_id] = response.json()
            return
        raise AssertionError(f"{external_id}: no answer in 5 attempts")

    def client(mine: list[int]) -> None:
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                for i in mine:
                    register(http, i, ids[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(list(range(k, len(ids), 16)),)) for k in range(16)]
    for thread in clients:
        thread.start()
    time.sleep(0.3)
    for _ in range(10):  # mid-request: the 16 clients keep every worker busy (again if it was between two)
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.3)
        if broken or not any(thread.is_alive() for thread in clients):
            break

    # A held registration commits, then its worker waits on the paused Redis: kill it there.
    redis_server.pause()
    victim: dict = {}

    def held() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            try:
                victim["first"] = http.post("/api/v1/tasks", json=registration("killed-victim", 0))
            except httpx.TransportError as exc:
                victim["broken"] = exc

    sender = threading.Thread(target=held)
    sender.start()
    eventually(lambda: ExecutionTask.objects.filter(external_id="killed-victim").exists(), timeout=30,
               what="the held registration commits")  # fmt: skip
    eventually(lambda: worker_talking_to(server, redis_server.port) is not None, timeout=30,
               what="the victim's worker waits on Redis")  # fmt: skip
    os.kill(worker_talking_to(server, redis_server.port), signal.SIGKILL)
    sender.join(timeout=30)
    redis_server.resume()
    for thread in clients:
        thread.join(timeout=120)
    assert not errors, errors
    assert "broken" in victim, f"the victim's request was answered: {victim}"

    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        retried = http.post("/api/v1/tasks", json=registration("killed-victim", 0))
    stored = ExecutionTask.objects.get(external_id="killed-victim")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["gate"]["decision"]) == (stored.pk, "hold")
    answers["killed-victim"] = retried.json()
    assert broken, "no client's request was cut by the first kill"
    assert_registered_once_each([*ids, "killed-victim"], answers)
