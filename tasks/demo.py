"""Demo execution tasks: realistic, skewed durations per type and model."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from django.db import transaction

from tasks import rollups
from tasks.models import ExecutionTask, TaskSource, TaskStatus, TaskType

DEMO_PREFIX = "demo-"

# (model, median seconds, failure rate, weight); None is "model not recorded".
MODELS = {
    TaskType.IMPLEMENT_IDEA: [
        ("gpt-5.1", 240, 0.04, 5),
        ("claude-sonnet-5", 200, 0.03, 4),
        ("llama-4-70b", 420, 0.11, 2),
        (None, 300, 0.06, 1),
    ],
    TaskType.IDEA_IMPLEMENTATION: [
        ("gpt-5.1", 900, 0.05, 4),
        ("claude-sonnet-5", 780, 0.04, 4),
        ("mistral-large-3", 1500, 0.14, 2),
        (None, 1100, 0.07, 1),
    ],
    TaskType.SELF_IMPROVEMENT: [("claude-opus-5", 600, 0.02, 3), ("gpt-5.1", 720, 0.05, 2), (None, 800, 0.08, 1)],
}
TYPE_WEIGHTS = {TaskType.IMPLEMENT_IDEA: 5, TaskType.IDEA_IMPLEMENTATION: 3, TaskType.SELF_IMPROVEMENT: 2}
CUSTOMERS = ["cust_acme", "cust_globex", "cust_initech", None]


def demo_tasks(*, count: int, now: datetime, days: int = 30, seed: int = 7) -> list[ExecutionTask]:
    """`count` tasks over the `days` before `now`: mostly finished, a few still open."""
    rng = random.Random(seed)
    types = list(TYPE_WEIGHTS)
    tasks = []
    for i in range(count):
        task_type = rng.choices(types, weights=[TYPE_WEIGHTS[t] for t in types])[0]
        model, median_s, failure_rate, _ = rng.choices(MODELS[task_type], weights=[m[3] for m in MODELS[task_type]])[0]
        created = now - timedelta(seconds=rng.uniform(0, days * 86400))
        # Log-normal durations with a heavy right tail; the slow model got slower lately.
        age_days = (now - created).total_seconds() / 86400
        drift = 1.25 if (model == "llama-4-70b" and age_days < 7) else 1.0
        duration_ms = int(median_s * 1000 * drift * math.exp(rng.gauss(0, 0.55)))
        started = created + timedelta(seconds=rng.uniform(0.2, 5))
        finished = started + timedelta(milliseconds=duration_ms)
        roll = rng.random()
        if roll < 0.01:
            # Work still in flight is recent: the abandoned-task job would fail old ones.
            created = now - timedelta(seconds=rng.uniform(60, 1800))
            started = created + timedelta(seconds=rng.uniform(0.2, 5))
            finished = started + timedelta(milliseconds=duration_ms)
        if finished > now or roll < 0.004:
            status, finished, duration = TaskStatus.RUNNING, None, None
        elif roll < 0.01:
            status, started, finished, duration = TaskStatus.REGISTERED, None, None, None
        elif roll < 0.013:
            status, finished, duration = TaskStatus.CANCELLED, finished, None
        elif rng.random() < failure_rate:
            status, duration = TaskStatus.FAILED, duration_ms
        else:
            status, duration = TaskStatus.SUCCEEDED, duration_ms
        tokens = int(duration_ms / 1000 * rng.uniform(20, 60)) if duration else None
        tasks.append(
            ExecutionTask(
                external_id=f"{DEMO_PREFIX}{seed}-{i:06d}",
                task_type=task_type,
                status=status,
                payload={},
                created_at=created,
                started_at=started,
                finished_at=finished,
                duration_ms=duration,
                cost_micros=tokens * rng.choice([3, 5, 8]) if tokens else None,
                tokens=tokens,
                error="model returned an invalid patch" if status == TaskStatus.FAILED else "",
                ai_model=model,
                customer_ref=rng.choice(CUSTOMERS),
                source=TaskSource.BACKFILL,
                gate_decision="allow",
                gate_reason="demo data",
                gate_policy="demo",
            )
        )
    return tasks


@transaction.atomic
def seed_demo_tasks(*, count: int, now: datetime) -> int:
    """Insert demo tasks unless they are there already; returns how many were added."""
    if ExecutionTask.objects.filter(external_id__startswith=f"{DEMO_PREFIX}7-").exists():
        return 0
    tasks = ExecutionTask.objects.bulk_create(demo_tasks(count=count, now=now), batch_size=2000)
    rollups.fold_tasks(tasks)
    return count
