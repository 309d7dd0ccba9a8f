"""Demo reviews for `manage.py seed_demo`: the seed report and two held ones, with
tasks waiting on them and one vote cast, and an operator's proposed policy change
waiting for the committee. Safe to rerun (reports are idempotent; one proposal)."""

from __future__ import annotations

from pathlib import Path

from reviews import services
from reviews.models import Case, PolicyChange, PolicyRule, Vote
from tasks.models import ApiKey, ExecutionTask
from tasks.services import Actor, task_register

REPORTS = Path(__file__).parent / "demo_reports"


def seed_demo_reviews(*, api_key: ApiKey, first_member=None, operator=None) -> int:
    """Ingest the demo reports; hold two tasks on the blocking one; `first_member` approves it once;
    `operator` proposes holding reports from severity 25 instead of 30."""
    created = 0
    for path in sorted(REPORTS.glob("*.md")):
        result = services.report_ingest(raw=path.read_bytes(), filename=path.name, api_key=api_key)
        created += result.created
    actor = Actor.for_key(api_key)
    for i in range(2):
        if ExecutionTask.objects.filter(external_id=f"demo-held-{i}").exists():
            continue  # registered by an earlier run's key: a key acts only on its own tasks
        task_register(
            actor=actor,
            external_id=f"demo-held-{i}",
            task_type="implement_idea",
            ai_model="gpt-5.1-mini",
            proposal_ref="fsar_demo-blocking-rollout",
        )
    blocking = Case.objects.filter(reports__report_id="fsar_demo-blocking-rollout").first()
    if first_member is not None and blocking is not None and not Vote.objects.filter(case=blocking).exists():
        # One approval of the two needed: a second member completes it and releases the held tasks.
        services.vote_cast(
            case_id=blocking.pk,
            member=first_member,
            choice="approve",
            rationale="The rollback is warm and traffic is capped at 30 percent.",
        )
        risky = Case.objects.filter(reports__report_id="fsar_demo-self-modify-gate").first()
        if risky is not None:
            services.comment_add(
                case_id=risky.pk, author=first_member, text="Who watches the thresholds if this ships?"
            )
    rule = PolicyRule.objects.filter(name="severity-30-hold").first()
    if operator is not None and rule is not None and not PolicyChange.objects.exists():
        services.policy_change_propose(
            by=operator,
            operation="change",
            rule_id=rule.pk,
            values={"severity_min": 25},
            reason="Reports between 25 and 29 slipped through twice last month; hold them for review too.",
        )
    return created
