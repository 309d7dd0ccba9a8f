"""From a rollback to the first route answer of stable, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench rollback [--runs=20] [--keep]

Creates its own database (fsar_bench_rollback), migrates it, approves two
versions of family `coder` (the stable and the candidate) and records a passed
rollback drill of the stable. Each run starts a rollout of the candidate, with
its first step at 100%, while two threads ask `GET /api/v1/models/route` (the
API, in this process, each thread with its own database connection) without a
pause for a key the candidate serves. The main thread then calls the rollback
service (what the page's button and the automatic rollbacks call).

Per run it reports how long the rollback call took, when the first route answer
of stable came (from the call's start), and the number of **stale answers**:
route requests that began after the rollback committed and still answered the
candidate. The goal (issue #18) is "the next request": zero stale answers in
every run. Drops the database at the end unless --keep.
"""

from __future__ import annotations

import os
import threading
import time

from bench.common import log, options, own_database, percentile, postgres_url_or_none

BENCH_DB = "fsar_bench_rollback"
STABLE, CANDIDATE = "coder-stable", "coder-next"


def main(argv: list[str]) -> int:
    runs = int(options(argv).get("runs", 20))
    url = postgres_url_or_none("rollback")
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url:
        os.environ["DATABASE_URL"] = bench_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fsar.settings")
        return run(runs)


def run(runs: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client
    from django.utils import timezone

    settings.DATABASES["default"]["NAME"] = BENCH_DB
    connection.close()
    connection.settings_dict["NAME"] = BENCH_DB
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*"]
    settings.API_RATE_LIMIT_REQUESTS = 0
    call_command("migrate", verbosity=0)

    from bench.models_on import approve_model_versions
    from deployments import rollouts, routing
    from deployments.models import ModelVersion, RollbackDrill
    from tasks.services import api_key_create

    approve_model_versions([STABLE, CANDIDATE])
    stable = ModelVersion.objects.get(ai_model=STABLE)
    candidate = ModelVersion.objects.get(ai_model=CANDIDATE)
    owner = get_user_model().objects.create_user(username="bench-router")
    _, secret = api_key_create(name="bench-router", owner=owner, scopes=["tasks"])
    steps = [{"weight": 100, "minutes": 60, "min_tasks": 1}]
    key = "customer-1"

    stale_total, call_ms, first_ms = 0, [], []
    for i in range(runs):
        now = timezone.now()
        RollbackDrill.objects.create(
            family=stable.family, target=stable, state=RollbackDrill.State.PASS, reason="warm", warm_ok=True,
            warm_status=200, warm_latency_ms=1, started_at=now, finished_at=now,
        )  # fmt: skip
        rollout = rollouts.rollout_create(candidate_id=candidate.pk, steps=steps, reason=f"Bench rollout, run {i}.")
        assert routing.route("coder", key).ai_model == CANDIDATE
        answers: list[tuple[float, float, str]] = []
        stop = threading.Event()

        def ask(stop: threading.Event = stop, answers: list = answers) -> None:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
            try:
                while not stop.is_set():
                    began = time.perf_counter()
                    body = client.get("/api/v1/models/route", {"family": "coder", "key": key}).json()
                    answers.append((began, time.perf_counter(), body["ai_model"]))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        called = time.perf_counter()
        rollouts.rollout_rollback(rollout_id=rollout.pk, reason="Bench rollback, measured.")
        committed = time.perf_counter()
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        stale = sum(1 for began, _, model in answers if began > committed and model != STABLE)
        firsts = [ended for began, ended, model in answers if began >= called and model == STABLE]
        stale_total += stale
        call_ms.append((committed - called) * 1000)
        first_ms.append((min(firsts) - called) * 1000 if firsts else float("inf"))
        log(f"run {i + 1}: rollback {call_ms[-1]:.1f} ms, first stable answer {first_ms[-1]:.1f} ms after "
            f"the call began, {stale} stale of {len(answers)} answers")  # fmt: skip

    call_ms.sort()
    first_ms.sort()
    log(
        f"{runs} runs: rollback call p50 {percentile(call_ms, 50):.1f} ms, max {call_ms[-1]:.1f} ms; first stable "
        f"answer p50 {percentile(first_ms, 50):.1f} ms, max {first_ms[-1]:.1f} ms after the call began; "
        f"stale answers after the commit: {stale_total} (goal 0)"
    )
    return 0 if stale_total == 0 else 1
