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
