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
