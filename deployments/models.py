"""AI model versions the committee must approve before tasks may run on them,
and the criteria (policy) that decide, at registration, whether a version is
blocked or held for the committee."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from tasks.models import ActorHistory, ApiKey


class VersionStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    BLOCKED = "blocked", "Blocked (failed the criteria)"
    REVOKED = "revoked", "Revoked"
    RETIRED = "retired", "Retired"


# Statuses on which the gate denies every task.
DENIED_STATUSES = (VersionStatus.REJECTED, VersionStatus.BLOCKED, VersionStatus.REVOKED, VersionStatus.RETIRED)


class RuleAction(models.TextChoices):
    HOLD = "hold", "Hold for the committee"
    DENY = "deny", "Deny (the version is blocked)"


class Comparison(models.TextChoices):
    GT = ">", ">"
    GE = ">=", "≥"
    LT = "<", "<"
    LE = "<=", "≤"
    EQ = "==", "="
    NE = "!=", "≠"


class ModelRule(models.Model):
    """One criterion on new model versions. Rules are tried in `priority` order
    (lowest first); the first rule all of whose *set* conditions hold decides.
    A comparison on a metric the evaluation lacks does not hold: name the metric
    in `required_metrics` to catch a missing one. Changed only through the
    committee's policy-change review (reviews' governed changes)."""

    name = models.CharField(max_length=100, unique=True)
    priority = models.IntegerField(help_text="Lower numbers are tried first.")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    # Conditions: blank means "not set".
    family_glob = models.CharField(
        max_length=200, blank=True, help_text="Shell-style glob on the family name, e.g. coder*."
    )
    required_metrics = models.JSONField(
        default=list,
        blank=True,
        help_text='Metric names, e.g. ["failure_rate"]: the rule matches when any of them is missing.',
    )
    metric = models.CharField(max_length=64, blank=True, help_text="An evaluation metric, e.g. failure_rate.")
    comparison = models.CharField(max_length=2, choices=Comparison.choices, blank=True)
    threshold = models.FloatField(null=True, blank=True, help_text="The metric compared with this.")
    # Action.
    action = models.CharField(max_length=10, choices=RuleAction.choices)
    quorum = models.PositiveSmallIntegerField(default=2, help_text="Approvals needed (hold).")
    sla_hours = models.PositiveIntegerField(default=72, help_text="Hours the committee has to decide (hold).")
    approval_valid_hours = models.PositiveIntegerField(
        default=24 * 90, help_text="How long an approval lasts before the version goes back to review (hold)."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = "model-version rule"

    def __str__(self) -> str:
        return f"{self.priority}: {self.name} → {self.action}"


class ModelVersion(models.Model):
    """One exact model version the AI side may put into `execution_tasks.ai_model`.
    Registered once (idempotent on `ai_model`); its status changes only through
    deployments.services, each change with history and an audit-chain entry."""

    family = models.CharField(max_length=100, help_text="The model family, e.g. coder.")
    ai_model = models.CharField(max_length=200, unique=True, help_text="Exactly as in execution_tasks.ai_model.")
    artifact_uri = models.CharField(max_length=1000)
    artifact_sha256 = models.CharField(max_length=64)
    health_url = models.URLField(max_length=500, blank=True, help_text="For rollback drills.")
    evaluation = models.JSONField(default=dict, help_text="Named evaluation results, e.g. failure_rate.")
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=VersionStatus.choices)
    status_reason = models.TextField(blank=True, help_text="Why the version has its status.")
    status_changed_at = models.DateTimeField(default=timezone.now)
    registered_at = models.DateTimeField(default=timezone.now)
    registered_by_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    registered_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The criteria's decision at registration: the rule and the values it compared.
    decision = models.CharField(max_length=10, choices=RuleAction.choices)
    decision_reason = models.TextField()
    decision_policy = models.CharField(max_length=100)
    decision_values = models.JSONField(default=dict)
    case = models.ForeignKey(
        "reviews.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Its review."
    )
    approved_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(bases=[ActorHistory])

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["family", "-id"], name="deployments_version_family"),
            models.Index(fields=["status", "-id"], name="deployments_version_status"),
        ]

    def __str__(self) -> str:
        return f"{self.ai_model} ({self.status})"

    @property
    def subject_ref(self) -> str:
        return subject_ref(self.pk)


SUBJECT_PREFIX = "model-version:"


def subject_ref(version_id: int) -> str:
    """The version's reference on its review case (reviews keeps plain strings)."""
    return f"{SUBJECT_PREFIX}{version_id}"


def version_id_of(ref: str) -> int | None:
    if not ref.startswith(SUBJECT_PREFIX):
        return None
    rest = ref.removeprefix(SUBJECT_PREFIX)
    return int(rest) if rest.isdigit() else None


# ------------------------------------------------------------------ rollouts


class RolloutState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROGRESSING = "progressing", "Progressing"
    PAUSED = "paused", "Paused"
    PROMOTED = "promoted", "Promoted"
    ABORTED = "aborted", "Aborted"
    ROLLED_BACK = "rolled_back", "Rolled back"


# A family has at most one rollout in these states (a partial unique constraint).
ACTIVE_STATES = (RolloutState.PENDING, RolloutState.PROGRESSING, RolloutState.PAUSED)
# A candidate in these states gets no traffic (the gate denies its tasks "not routed").
WITHDRAWN_STATES = (RolloutState.ABORTED, RolloutState.ROLLED_BACK)


class Rollout(models.Model):
    """A family's candidate version taking traffic from its stable version step by
    step. `steps` is a list of {"weight": percent, "min_minutes", "min_tasks",
    "deadline_minutes"}; `step` indexes it (-1 before the start) and `weight` is the
    candidate's share now (0 to 100). Every transition is a service in
    deployments.rollouts, with history, an audit-chain entry and a reason."""

    family = models.CharField(max_length=100)
    stable = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    candidate = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    steps = models.JSONField()
    step = models.IntegerField(default=-1)
    weight = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=20, choices=RolloutState.choices, default=RolloutState.PENDING)
    reason = models.TextField(help_text="Why it has its state (the last transition's reason).")
    auto_promote = models.BooleanField(
        default=True, help_text="A passed analysis moves to the next step by itself (else an operator confirms)."
    )
    awaiting_confirm = models.BooleanField(default=False)
    thresholds = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(bases=[ActorHistory])

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["family"],
                condition=models.Q(state__in=["pending", "progressing", "paused"]),
                name="deployments_one_active_rollout_per_family",
            ),
            models.CheckConstraint(condition=models.Q(weight__lte=100), name="deployments_rollout_weight_le_100"),
        ]
        indexes = [models.Index(fields=["family", "-id"], name="deployments_rollout_family")]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.family} ({self.state}, {self.weight}%)"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class RolloutAnalysis(models.Model):
    """The comparison of candidate against stable over one step's window, with its figures."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="analyses")
    step = models.IntegerField()
    weight = models.PositiveSmallIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    reason = models.TextField()
    figures = models.JSONField(default=dict, help_text="candidate, stable, thresholds and per-criterion results")
    case = models.ForeignKey("reviews.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rollout", "id"]

    def __str__(self) -> str:
        return f"analysis {self.pk} of rollout {self.rollout_id} step {self.step + 1}: {self.verdict}"


class RollbackDrill(models.Model):
    """A drill of a rollback target: (a) warm, its health_url answers 2xx in time;
    (b) works, a drill share of traffic routed to it finishes no worse than the
    family's live version. `running` while the works part collects tasks."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    family = models.CharField(max_length=100)
    target = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="drills")
    live = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    reason = models.TextField(blank=True)
    warm_ok = models.BooleanField(null=True)
    warm_status = models.IntegerField(null=True, blank=True)
    warm_latency_ms = models.IntegerField(null=True, blank=True)
    warm_error = models.TextField(blank=True)
    share = models.FloatField(default=1.0, help_text="Percent of the family's traffic routed to the target.")
    figures = models.JSONField(default=dict)
    case = models.ForeignKey("reviews.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    by = models.CharField(max_length=200, default="system")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target", "-id"], name="deployments_drill_target")]
        constraints = [
            models.UniqueConstraint(
                fields=["family"], condition=models.Q(state="running"), name="deployments_one_running_drill"
            )
        ]

    def __str__(self) -> str:
        return f"drill {self.pk} of {self.target_id} ({self.state})"
