"""Model versions on, for the benchmarks (deployments, MODELS_UNREGISTERED=hold,
the default): the models the benchmark's tasks run on are registered and
approved by two committee members, as in production, so the gate's model check
(deployments.gate) answers for every registration."""

from __future__ import annotations


def approve_model_versions(models: list[str]) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import COMMITTEE
    from deployments.services import VersionInput, version_register
    from reviews.services import vote_cast
    from tasks.services import Actor

    users = get_user_model().objects
    registrar = users.create_user(username="bench-model-registrar")
    members = [users.create_user(username=f"bench-member-{i}") for i in range(2)]
    committee = Group.objects.get_or_create(name=COMMITTEE)[0]
    for member in members:
        member.groups.add(committee)
    for i, ai_model in enumerate(models):
        version, _ = version_register(
            actor=Actor(user=registrar),
            data=VersionInput(
                family=ai_model.split("-")[0],
                ai_model=ai_model,
                artifact_uri=f"s3://bench/{ai_model}",
                artifact_sha256=f"{i:064x}",
                evaluation={"failure_rate": 0.05},
            ),
        )
        for member in members:
            vote_cast(case_id=version.case_id, member=member, choice="approve", rationale="Approved for the benchmark.")


def audits_on(models: list[str]) -> None:
    """Audits on (assurance): a required garak suite for every family and a passing
    run for each version, so the gate's audit check (assurance.gate) answers for
    every registration after the model check."""
    from pathlib import Path

    from assurance.models import AuditSuite
    from assurance.services import Sender, run_submit

    AuditSuite.objects.create(
        name="bench-garak",
        source="garak",
        criteria=[{"metric": "attack_success_rate", "comparison": "<=", "threshold": 0.1}],
        schedule="0 3 * * *",
        grace_minutes=24 * 60,
        required=True,
    )
    report = (Path(__file__).resolve().parents[1] / "assurance/tests/samples/garak_new.report.jsonl").read_bytes()
    for ai_model in models:
        run, _ = run_submit(suite="bench-garak", ai_model=ai_model, fmt="garak", content=report, sender=Sender())
        assert run.verdict == "pass", run.verdict_reason
