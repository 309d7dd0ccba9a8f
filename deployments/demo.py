"""Demo model versions for `manage.py seed_demo`: the models the demo tasks run
on, registered and approved by two committee members, and one new version
pending review with tasks held on it, so the queue shows a model case. Safe to
rerun (registration is idempotent; members vote only where they have not)."""

from __future__ import annotations

from deployments import services
from deployments.models import VersionStatus
from reviews import services as review_services
from tasks.models import ApiKey, ExecutionTask
from tasks.services import Actor, task_register

SHA = "{:064x}"

# (family, ai_model, evaluation): the models tasks/demo.py and reviews/demo.py use.
APPROVED = [
    ("gpt", "gpt-5.1", {"failure_rate": 0.04, "p95_ms": 5200, "refusal_rate": 0.02, "red_team_pass_rate": 0.95}),
    (
        "gpt-mini",
        "gpt-5.1-mini",
        {"failure_rate": 0.06, "p95_ms": 2100, "refusal_rate": 0.03, "red_team_pass_rate": 0.9},
    ),
    (
        "claude-sonnet",
        "claude-sonnet-5",
        {"failure_rate": 0.03, "p95_ms": 4400, "refusal_rate": 0.04, "red_team_pass_rate": 0.97},
    ),
    (
        "claude-opus",
        "claude-opus-5",
        {"failure_rate": 0.02, "p95_ms": 9800, "refusal_rate": 0.04, "red_team_pass_rate": 0.98},
    ),
    ("llama", "llama-4-70b", {"failure_rate": 0.11, "p95_ms": 11800, "refusal_rate": 0.01, "red_team_pass_rate": 0.86}),
    (
        "mistral",
        "mistral-large-3",
        {"failure_rate": 0.14, "p95_ms": 31000, "refusal_rate": 0.02, "red_team_pass_rate": 0.88},
    ),
]
PENDING = (
    "gpt",
    "gpt-5.2-preview",
    {"failure_rate": 0.05, "p95_ms": 6100, "refusal_rate": 0.02, "red_team_pass_rate": 0.93},
)
HELD_TASKS = 3


def _register(actor: Actor, n: int, family: str, ai_model: str, evaluation: dict):
    version, _ = services.version_register(
        actor=actor,
        data=services.VersionInput(
            family=family,
            ai_model=ai_model,
            artifact_uri=f"s3://fsar-demo-models/{family}/{ai_model}.safetensors",
            artifact_sha256=SHA.format(0xD3110 + n),
            evaluation=evaluation,
            notes="Demo version.",
        ),
    )
    return version


def _approve(version, members: list, why: str):
    for member in members:
        case = version.case
        if case is None or review_services.why_cannot_vote(case, member) is not None:
            continue
        review_services.vote_cast(case_id=case.pk, member=member, choice="approve", rationale=why)
        version.refresh_from_db()
    return version


def seed_demo_models(*, api_key: ApiKey, members: list) -> int:
    """Register the demo versions; `members` (two committee members) approve all but
    the pending one. Returns how many versions are approved now."""
    actor = Actor.for_key(api_key)
    approved = 0
    for n, (family, ai_model, evaluation) in enumerate(APPROVED):
        version = _register(actor, n, family, ai_model, evaluation)
        for member in members:
            case = version.case
            if case is None or review_services.why_cannot_vote(case, member) is not None:
                continue
            review_services.vote_cast(
                case_id=case.pk,
                member=member,
                choice="approve",
                rationale=f"{ai_model} has run the demo workload for a month within its error budget.",
            )
            version.refresh_from_db()
        approved += version.status == VersionStatus.APPROVED
    family, ai_model, evaluation = PENDING
    _register(actor, len(APPROVED), family, ai_model, evaluation)
    for i in range(HELD_TASKS):
        # A rerun may act through a new demo key, and a key may only act on its own tasks.
        if not ExecutionTask.objects.filter(external_id=f"demo-model-held-{i}").exists():
            task_register(
                actor=actor, external_id=f"demo-model-held-{i}", task_type="implement_idea", ai_model=ai_model
            )
    return approved


# ------------------------------------------------------------------ rollouts

# (family, stable, candidate): "coder" is mid-rollout at 25% with two passed steps;
# "writer" has a rollback target whose last drill failed, so its rollout is refused.
ROLLOUT_FAMILY = ("coder", "coder-2026-10", "coder-2026-12")
REFUSED_FAMILY = ("writer", "writer-2026-09", "writer-2026-11")
DEMO_STEPS = [
    {"weight": 5, "min_minutes": 30, "min_tasks": 20},
    {"weight": 10, "min_minutes": 30, "min_tasks": 20},
    {"weight": 25, "min_minutes": 30, "min_tasks": 20},
    {"weight": 50, "min_minutes": 30, "min_tasks": 20},
    {"weight": 100, "min_minutes": 30, "min_tasks": 20},
]
EVALUATION = {"failure_rate": 0.04, "p95_ms": 5000, "refusal_rate": 0.02, "red_team_pass_rate": 0.95}


def _finished(actor: Actor, ai_model: str, start, minutes: int, n: int, failed: int, base_ms: int, tag: str) -> None:
    """`n` finished tasks of `ai_model` spread over `minutes` after `start` (the backfill service)."""
    from datetime import timedelta

    from tasks.backfill import BackfillRow, tasks_backfill

    rows = []
    for i in range(n):
        finished = start + timedelta(seconds=(minutes * 60 * (i + 1)) // (n + 1))
        duration = base_ms + (i * 137) % 900
        rows.append(
            BackfillRow(
                external_id=f"demo-rollout-{tag}-{ai_model}-{i}",
                task_type="implement_idea",
                status="failed" if failed and i % (n // failed) == 0 and i // (n // failed) < failed else "succeeded",
                started_at=finished - timedelta(milliseconds=duration),
                finished_at=finished,
                ai_model=ai_model,
                cost_micros=40_000 + (i * 53) % 9_000,
                error="",
            )
        )
    tasks_backfill(actor=actor, rows=rows)


def seed_demo_rollouts(*, api_key: ApiKey, members: list, operator) -> str:
    """The rollout demo (safe to rerun: a family that has a rollout or a drill is left as it is)."""
    from datetime import timedelta

    from django.utils import timezone

    from deployments import analysis, drills, rollouts
    from deployments.models import RollbackDrill, Rollout

    actor = Actor.for_key(api_key)
    why = "Its evaluation and the red-team suite are within the family's budget."
    versions = {}
    for n, (family, ai_model) in enumerate(
        [(f, m) for f, *ms in (ROLLOUT_FAMILY, REFUSED_FAMILY) for m in ms], start=100
    ):
        version = _register(actor, n, family, ai_model, EVALUATION)
        versions[ai_model] = _approve(version, members, why)
    now = timezone.now()
    family, stable, candidate = ROLLOUT_FAMILY
    if not Rollout.objects.filter(family=family).exists():
        t0 = now - timedelta(hours=3)
        _finished(actor, stable, t0 - timedelta(hours=6), 360, 120, 5, 4200, "before")  # the family runs on it
        drill = RollbackDrill(family=family, target=versions[stable], started_at=t0, by="seed_demo")
        drill.warm_ok, drill.warm_status, drill.warm_latency_ms = True, 200, 41
        drill.figures = {"note": "demo: the target is the live version"}
        drills._finish(drill, RollbackDrill.State.PASS, "warm (HTTP 200 in 41 ms)", now=t0)
        rollout = rollouts.rollout_create(
            candidate_id=versions[candidate].pk,
            steps=DEMO_STEPS,
            reason="Roll coder-2026-12 out in five steps; operators confirm each passed step.",
            by=operator,
            auto_promote=False,
            now=t0,
        )
        start = t0
        for step in range(2):
            _finished(actor, stable, start, 40, 60, 2, 4200, f"s{step}")
            _finished(actor, candidate, start, 40, 30, 1, 4300, f"c{step}")
            at = start + timedelta(minutes=45)
            analysis.rollout_analyze(rollout_id=rollout.pk, now=at)
            rollouts.rollout_promote(
                rollout_id=rollout.pk, by=operator, reason=f"Step {step + 1} passed its analysis; confirmed.", now=at
            )
            start = at
        _finished(actor, stable, start, 40, 45, 2, 4200, "s2")
        _finished(actor, candidate, start, 40, 25, 1, 4250, "c2")
    family, stable, candidate = REFUSED_FAMILY
    if not RollbackDrill.objects.filter(family=family).exists():
        _finished(actor, stable, now - timedelta(hours=12), 600, 80, 3, 2600, "before")
        drill = RollbackDrill(
            family=family, target=versions[stable], started_at=now - timedelta(hours=1), by="seed_demo"
        )
        drill.warm_ok, drill.warm_status, drill.warm_latency_ms = False, 503, 120
        drill.warm_error = "answered HTTP 503"
        drills._finish(
            drill, RollbackDrill.State.FAIL, "warm check failed: answered HTTP 503", now=now - timedelta(hours=1)
        )
    return (
        "coder mid-rollout at 25% after two passed steps (coder-2026-10 → coder-2026-12); writer's rollback target "
        "failed its last drill, so a rollout of writer-2026-11 is refused"
    )
