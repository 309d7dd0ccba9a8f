"""The rqworker's class (core/worker.py): jobs run in the worker's own process, and a
job after one whose database connection was killed gets a new connection.

The jobs' tests need PostgreSQL (a backend terminated with pg_terminate_backend), with a private
redis-server of the test's own (fsar/tests/faults_support.py).
"""

from __future__ import annotations

import os

import django_rq
import pytest
import redis
from django.db import connection
from rq import Queue
from rq.worker import SimpleWorker

from core.worker import Worker
from fsar.testing import admin_connection
from fsar.tests import faults_support

redis_server, started = faults_support.redis_server, faults_support.started

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.xdist_group("faults"),  # with the fault tests, on one xdist worker (docs/testing.md)
]
needs_postgres = pytest.mark.postgres(reason="terminates the worker's PostgreSQL backend")


def backend_and_process() -> tuple[int, int]:
    """The job: its PostgreSQL backend's pid and its own process's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0], os.getpid()


def run_two_jobs_killing_the_first_ones_backend(worker_class, redis_url: str):
    queue = Queue("worker-test", connection=redis.Redis.from_url(redis_url))
    first = queue.enqueue(backend_and_process)
    worker_class([queue], connection=queue.connection).work(burst=True)
    backend, process = first.return_value()
    with admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    second = queue.enqueue(backend_and_process)
    worker_class([queue], connection=queue.connection).work(burst=True)
    second.refresh()
    return process, backend, second


def test_the_settings_name_this_worker_class():
    assert django_rq.workers.get_worker_class() is Worker


@needs_postgres
def test_jobs_run_in_the_worker_and_a_killed_connection_is_replaced_before_the_next_job(redis_server):
    process, backend, second = run_two_jobs_killing_the_first_ones_backend(Worker, redis_server.url)

    assert process == os.getpid()  # no work horse was forked
    assert second.get_status() == "finished", second.latest_result().exc_string
    new_backend, _ = second.return_value()
    assert new_backend != backend


@needs_postgres
def test_without_the_connection_handling_the_next_job_fails(redis_server):
    """What Worker adds to RQ's SimpleWorker: without it the dead connection is reused."""
    _, _, second = run_two_jobs_killing_the_first_ones_backend(SimpleWorker, redis_server.url)

    assert second.get_status() == "failed"
    assert "OperationalError" in second.latest_result().exc_string
    connection.close()  # the test's own connection was the killed one
