"""Rollout test helpers (drills, finished tasks), importable by the rollout tests."""

REASON = "Ship the new coder to a share of traffic."


def passed_drill(version, *, at=None):
    """A passed rollback drill of `version` (at `at`, default now)."""
    from django.utils import timezone

    from deployments.models import RollbackDrill

    at = at or timezone.now()
    return RollbackDrill.objects.create(
        family=version.family,
        target=version,
        state=RollbackDrill.State.PASS,
        reason="warm",
        warm_ok=True,
        warm_status=200,
        warm_latency_ms=3,
        started_at=at,
        finished_at=at,
    )


def finished_tasks(ai_model, n, *, failed=0, duration_ms=1000, cost_micros=500, at=None, prefix=""):
    """`n` finished tasks of `ai_model`, `failed` of them failed, finished at `at`."""
    from django.utils import timezone

    from tasks.models import ExecutionTask, TaskSource

    at = at or timezone.now()
    tag = prefix or f"{ai_model}-{at.timestamp()}"
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"{tag}-{i}",
            task_type="implement_idea",
            status="failed" if i < failed else "succeeded",
            ai_model=ai_model,
            source=TaskSource.API,
            started_at=at,
            finished_at=at,
            duration_ms=duration_ms + i % 7,
            cost_micros=cost_micros,
        )
        for i in range(n)
    )


