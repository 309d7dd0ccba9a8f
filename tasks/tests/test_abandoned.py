"""Tasks left `running` past the timeout are marked failed ("abandoned")."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from tasks.models import ExecutionTask, TaskStatus
from tasks.services import fail_abandoned_tasks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def running(external_id: str, started_ago: timedelta) -> ExecutionTask:
    return ExecutionTask.objects.create(
        external_id=external_id,
        task_type="implement_idea",
        status=TaskStatus.RUNNING,
        started_at=NOW - started_ago,
        source="api",
    )


@override_settings(TASK_RUNNING_TIMEOUT_SECONDS=3600)
def test_it_fails_tasks_running_past_the_timeout_and_leaves_the_others():
    stale = running("stale", timedelta(hours=2))
    fresh = running("fresh", timedelta(minutes=10))
    with time_machine.travel(NOW, tick=False):
        assert fail_abandoned_tasks() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == TaskStatus.FAILED
    assert stale.error == "abandoned"
    assert stale.finished_at == NOW
    assert stale.duration_ms == 2 * 3600 * 1000
    assert fresh.status == TaskStatus.RUNNING
    last = stale.history.order_by("-history_id").first()
    assert last.history_change_reason == "abandoned: still running after 3600 s"
    assert last.history_user is None


@override_settings(TASK_RUNNING_TIMEOUT_SECONDS=3600)
def test_running_it_twice_changes_nothing_more():
    running("stale", timedelta(hours=2))
    with time_machine.travel(NOW, tick=False):
        assert fail_abandoned_tasks() == 1
        assert fail_abandoned_tasks() == 0
    assert ExecutionTask.history.filter(external_id="stale").count() == 2


@override_settings(TASK_RUNNING_TIMEOUT_SECONDS=3600)
def test_the_periodic_loop_runs_it(capsys):
    from django.core.management import call_command

    running("stale", timedelta(days=1))
    call_command("run_periodic", "--once")
    assert ExecutionTask.objects.get().status == TaskStatus.FAILED


@pytest.mark.postgres(reason="a real RQ worker on Redis, which CI's PostgreSQL pass runs")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(TASK_RUNNING_TIMEOUT_SECONDS=60)
def test_a_real_rq_worker_runs_the_job_from_redis(rq_worker):
    import django_rq

    from tasks.jobs import fail_abandoned_tasks as job

    stale = ExecutionTask.objects.create(
        external_id="stale",
        task_type="implement_idea",
        status=TaskStatus.RUNNING,
        started_at=datetime.now(UTC) - timedelta(hours=8),
        source="api",
    )
    django_rq.get_queue("default", is_async=True).enqueue(job)
    rq_worker()
    stale.refresh_from_db()
    assert stale.status == TaskStatus.FAILED
    assert stale.error == "abandoned"
