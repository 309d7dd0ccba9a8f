"""FSAR reports, the policy rules the gate evaluates, review cases, the gate's
global state (the kill switch), the operators' review settings, and signed
callbacks to the AI side."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from tasks.models import ApiKey, TaskType


class Action(models.TextChoices):
    ALLOW = "allow", "Allow"
    HOLD = "hold", "Hold for a committee decision"
    DENY = "deny", "Deny"


class MetricKind(models.TextChoices):
    FAILURE_RATE = "failure_rate", "Failure rate (0–1) over the model's last N finished tasks"
    P95_DURATION_MS = "p95_duration_ms", "p95 duration (ms) over the model's last N finished tasks"


class PolicyRule(models.Model):
    """One rule of the gate's policy. Rules are tried in `priority` order (lowest
    first); the first rule all of whose *set* conditions hold decides. A condition
    the subject lacks (say, a severity for a task with no report) does not hold."""

    name = models.CharField(max_length=100, unique=True)
    priority = models.IntegerField(help_text="Lower numbers are tried first.")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    # Conditions: blank/null means "not set".
    task_types = models.JSONField(
        default=list, blank=True, help_text=f"Any of these task types ({', '.join(TaskType.values)})."
    )
    ai_model_glob = models.CharField(max_length=200, blank=True, help_text="Shell-style glob, e.g. gpt-5*.")
    severity_min = models.BigIntegerField(null=True, blank=True, help_text="Severity ≥ this.")
    severity_max = models.BigIntegerField(null=True, blank=True, help_text="Severity ≤ this.")
    block_execution = models.BooleanField(null=True, blank=True, help_text="The report's block_execution equals this.")
    proposal_words = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated words or phrases; any one in the proposal matches."
    )
    customers = models.JSONField(default=list, blank=True, help_text="Any of these customer refs.")
    metric = models.CharField(max_length=20, choices=MetricKind.choices, blank=True)
    metric_threshold = models.FloatField(null=True, blank=True, help_text="The metric is above this.")
    metric_window = models.PositiveIntegerField(null=True, blank=True, help_text="Over the model's last N tasks.")
    model_alert_firing = models.BooleanField(
        "alert firing for this model",
        default=False,
        help_text="Only when an indicator alert about the task's model is firing (or acknowledged, not resolved).",
    )
    # Action.
    action = models.CharField(max_length=10, choices=Action.choices)
    quorum = models.PositiveSmallIntegerField(default=1, help_text="Approvals needed (hold).")
    sla_hours = models.PositiveIntegerField(default=72, help_text="Hours the committee has to decide (hold).")
    approval_valid_hours = models.PositiveIntegerField(
        default=24 * 90, help_text="How long an approval lasts before continuing review (hold)."
    )
    decide_by_majority = models.BooleanField(
        default=False, help_text="Hold: reject by a majority of votes cast instead of on any one reject."
    )
    advisory_min_severity = models.BigIntegerField(
        null=True, blank=True, help_text="Allow: reports at or above this severity open an advisory case."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.priority}: {self.name} → {self.action}"


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired (approval lapsed)"
    ADVISORY = "advisory", "Advisory"


# Statuses in which tasks wait on the case.
WAITING_STATUSES = (CaseStatus.OPEN, CaseStatus.CHANGES_REQUESTED)
# Decided: nothing waits on the committee (changes_requested waits for a revision; an
# expired approval is in continuing review). Claims and recusals are refused.
DECIDED_STATUSES = (CaseStatus.APPROVED, CaseStatus.REJECTED)
# Statuses that put a case in the committee's queue (expired: continuing review).
QUEUE_STATUSES = (CaseStatus.OPEN, CaseStatus.CHANGES_REQUESTED, CaseStatus.EXPIRED, CaseStatus.ADVISORY)


def case_kinds() -> list[tuple[str, str]]:
    """Case.kind's choices: the built-in kinds, then those upper apps registered (reviews.subjects)."""
    from reviews import subjects

    return [*Case.Kind.choices, *subjects.kind_choices()]


class Case(models.Model):
    """What the committee decides on. Its subject is a report (revisions join the
    same case), for tasks held without a report the (rule, task type, AI model)
    they matched, so one case covers every task waiting on the same thing, or,
    for the kinds upper apps register (reviews.subjects), `subject_ref`."""

    class Kind(models.TextChoices):
        REPORT = "report", "FSAR report"
        TASKS = "tasks", "Held tasks"
        POLICY = "policy", "Policy change"

    kind = models.CharField(max_length=10, choices=case_kinds)
    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    title = models.CharField(max_length=300)
    rule = models.ForeignKey(PolicyRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases")
    rule_name = models.CharField(max_length=100, blank=True)
    # The subject of a task case: (rule_name, task_type, ai_model).
    task_type = models.CharField(max_length=40, blank=True)
    ai_model = models.CharField(max_length=200, blank=True)
    # The subject of a case of a registered kind, e.g. "model-version:12" (reviews.subjects).
    subject_ref = models.CharField(max_length=200, blank=True, default="")
    quorum = models.PositiveSmallIntegerField(default=1)
    approval_valid_hours = models.PositiveIntegerField(default=24 * 90)
    decide_by_majority = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by each revision; votes count per version.")
    severity = models.BigIntegerField(
        default=0, help_text="The latest report's severity (0 for held tasks); orders the queue."
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    short_of_members = models.BooleanField(
        default=False, help_text="Recusals leave fewer eligible members than the quorum: operators are alerted."
    )
    sla_hours = models.PositiveIntegerField(
        default=72,
        help_text="Hours the committee has to decide, fixed when the case opens (its rule's); "
        "a reopened, escalated or revoked case is due this long after that.",
    )
    opened_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rationale = models.TextField(blank=True)
    approved_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        indexes = [
            models.Index(fields=["status", "-id"], name="reviews_case_status"),
            # The queue's keyset order: most severe first, then nearest (or most overdue) due time.
            models.Index(
                models.F("severity").desc(),
                "due_at",
                "id",
                name="reviews_case_queue",
                condition=models.Q(status__in=["open", "changes_requested", "expired", "advisory"]),
            ),
            models.Index(fields=["kind", "rule_name", "task_type", "ai_model", "-id"], name="reviews_case_subject"),
            models.Index(
                fields=["kind", "subject_ref", "-id"],
                name="reviews_case_subject_ref",
                condition=~models.Q(subject_ref=""),
            ),
            # indicators: the cases due in an hour or a day (expiring undecided) as an index range.
            models.Index(fields=["due_at"], name="reviews_case_due"),
        ]
        constraints = [
            # One waiting case per held-task subject, even under concurrent registrations.
            models.UniqueConstraint(
                fields=["rule_name", "task_type", "ai_model"],
                condition=models.Q(kind="tasks", status__in=["open", "changes_requested"]),
                name="reviews_one_waiting_case_per_subject",
            ),
            # One waiting case per subject of an upper app, even under concurrent opens.
            models.UniqueConstraint(
                fields=["kind", "subject_ref"],
                condition=models.Q(status__in=["open", "changes_requested"]) & ~models.Q(subject_ref=""),
                name="reviews_one_waiting_case_per_subject_ref",
            ),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk}: {self.title} ({self.status})"


class Vote(models.Model):
    """One member's vote on one version of a case. A revision bumps the case's
    version, which voids earlier votes (they stay, for the record)."""

    class Choice(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        REQUEST_CHANGES = "request_changes", "Request changes"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="votes")
    case_version = models.PositiveIntegerField()
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    choice = models.CharField(max_length=20, choices=Choice.choices)
    rationale = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "case_version", "member"], name="reviews_one_vote_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.member} {self.choice} case {self.case_id} v{self.case_version}"


class CaseView(models.Model):
    """When a member who may vote first opened the page of one version of a case
    (reviews.services.case_view_record): written once, later views do not move it;
    a revision (a new version) gets a row of its own. The time from here to the
    vote is what the reviewer-behaviour indicators read."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="views")
    case_version = models.PositiveIntegerField()
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    first_viewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "case_version", "member"], name="reviews_one_view_per_version")
        ]
        indexes = [models.Index(fields=["first_viewed_at"], name="reviews_caseview_at")]

    def __str__(self) -> str:
        return f"{self.member} opened case {self.case_id} v{self.case_version}"


class Recusal(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="recusals")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "member"], name="reviews_one_recusal_per_member")]

    def __str__(self) -> str:
        return f"{self.member} recused from case {self.case_id}"


class Comment(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.author} on case {self.case_id}"


class Report(models.Model):
    """One FSAR report: the raw text as received beside its structured record,
    and the gate's decision on it with the rule and the values it compared."""

    class Format(models.TextChoices):
        MARKDOWN = "markdown", "Markdown"
        JSON = "json", "JSON"

    report_id = models.CharField(max_length=200, unique=True)
    timestamp = models.DateTimeField()
    severity = models.BigIntegerField()
    block_execution = models.BooleanField()
    task_type = models.CharField(max_length=40, null=True, blank=True)
    proposal = models.TextField()
    fingerprint = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the whitespace-folded proposal.")
    risks = models.JSONField(default=list)
    mitigations = models.JSONField(default=list)
    supersedes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="revisions", to_field="report_id"
    )
    raw = models.TextField(help_text="The report exactly as received.")
    raw_format = models.CharField(max_length=10, choices=Format.choices)
    received_at = models.DateTimeField(default=timezone.now)
    # No constraint in the database on the key (nor on the history rows' user, below), as
    # on a task's (tasks.0016): a deferred check looked the key up again at each report's
    # commit, planned anew every time (plan_cache_mode). The key is the request's
    # authenticated one; keys are revoked, never deleted (the admin cannot), and an ORM
    # delete still clears it (SET_NULL). Migration reviews.0014.
    submitted_by = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    rejected_precedent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="An earlier, rejected report with the same proposal.",
    )
    gate_decision = models.CharField(max_length=10, choices=Action.choices)
    gate_reason = models.TextField()
    gate_policy = models.CharField(max_length=100, blank=True)
    gate_values = models.JSONField(default=dict, help_text="The values the deciding rule compared.")
    # A known-bad report an operator seeded to test the committee (reviews.services.honeypot_seed).
    # Shown only in the admin; its case releases nothing, whatever the vote.
    honeypot = models.BooleanField(default=False)
    # Its history is read by report (`id`, indexed), never searched by another column: the
    # history table indexes nothing else (each index costs every report received an insert).
    history = HistoricalRecords(
        excluded_fields=["raw"],
        no_db_index=["report_id", "fingerprint", "supersedes", "submitted_by", "uploaded_by", "case",
                     "rejected_precedent"],
        user_db_constraint=False,
    )  # fmt: skip

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.report_id


def new_rules_version() -> str:
    return uuid.uuid4().hex


class GateState(models.Model):
    """The gate's global state, one row (pk=1): the kill switch, and a rules
    version, a fresh random token whenever a policy rule changes, so that every
    process reloads its cached rules (random, not a counter, so a rolled-back
    change can never reuse a version that named other rules)."""

    paused = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rules_version = models.CharField(max_length=32, default=new_rules_version)
    history = HistoricalRecords(excluded_fields=["rules_version"])

    class Meta:
        verbose_name = "gate state"

    def __str__(self) -> str:
        return "paused" if self.paused else "running"


class ReviewSettings(models.Model):
    """Operators' settings for the committee's work, one row (pk=1), changed only
    through `services.review_settings_set` (history and an audit-chain entry).

    `require_totp`: every member needs a TOTP-verified session to vote, recuse,
    revoke or escalate. `settings.REVIEWS_REQUIRE_TOTP` is a floor: when the
    environment turns it on, it is on whatever this row says."""

    require_totp = models.BooleanField(
        "require two-factor for decisions",
        default=False,
        help_text="Every committee member must enrol an authenticator app (TOTP) and enter a code each session "
        "before voting, recusing or revoking.",
    )
    chair = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="committee chair",
        help_text="Told first of alerts about reviewers; when unset, every operator is.",
    )
    reason = models.TextField(blank=True, help_text="Why the last change was made.")
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "review settings"
        verbose_name_plural = "review settings"

    def __str__(self) -> str:
        return "Review settings"


class CallbackEndpoint(models.Model):
    """Where the AI side behind an API key wants to hear about gate changes."""

    api_key = models.OneToOneField(ApiKey, on_delete=models.CASCADE, related_name="callback")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, help_text="Shared secret for the HMAC-SHA256 signature.")
    enabled = models.BooleanField(default=True)
    history = HistoricalRecords(excluded_fields=["secret"])

    def __str__(self) -> str:
        return f"{self.api_key.name} → {self.url}"


class CallbackDelivery(models.Model):
    class Type(models.TextChoices):
        RELEASED = "released", "Task released"
        DENIED = "denied", "Task denied"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        STOP = "stop", "Stop (gate paused)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(CallbackEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    type = models.CharField(max_length=20, choices=Type.choices)
    task_id = models.BigIntegerField()
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "callback deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="reviews_delivery_due")]

    def __str__(self) -> str:
        return f"{self.type} task {self.task_id} ({self.status})"


class PolicyChange(models.Model):
    """A proposed change to a policy rule (create, change, disable or delete). It
    takes effect only when the committee approves its case (kind `policy`);
    until then the rule as it is keeps deciding. An emergency change by a
    superuser is applied at once and its case reviews it in retrospect."""

    class Operation(models.TextChoices):
        CREATE = "create", "Create a rule"
        CHANGE = "change", "Change a rule"
        DISABLE = "disable", "Disable a rule"
        DELETE = "delete", "Delete a rule"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending committee approval"
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"
        CHANGES_REQUESTED = "changes_requested", "Changes requested (propose again)"
        SUPERSEDED = "superseded", "Superseded by an emergency change"

    operation = models.CharField(max_length=10, choices=Operation.choices)
    # What is changed: a PolicyRule, or a row of another app's governed policy (reviews.governed).
    target = models.CharField(
        max_length=100, default="reviews.policyrule", help_text="The governed model, app_label.modelname."
    )
    object_id = models.PositiveBigIntegerField(null=True, blank=True, help_text="The row changed; null: create.")
    rule = models.ForeignKey(
        PolicyRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="changes",
        help_text="The policy rule, when the target is one.",
    )
    rule_name = models.CharField(max_length=100, help_text="The row's name when proposed (kept after a delete).")
    before = models.JSONField(default=dict, blank=True, help_text="The rule's values when proposed ({} for create).")
    proposed = models.JSONField(default=dict, blank=True, help_text="The rule's values once applied ({} for delete).")
    diff = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]} for every changed field.")
    reason = models.TextField()
    emergency = models.BooleanField(default=False, help_text="Applied at once by a superuser; reviewed in retrospect.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)
    case = models.OneToOneField(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="policy_change")
    history = HistoricalRecords()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One pending change per rule, so an approved change never lands on values it did not see.
            models.UniqueConstraint(
                fields=["rule"], condition=models.Q(status="pending"), name="reviews_one_pending_change_per_rule"
            ),
            models.UniqueConstraint(
                fields=["target", "object_id"],
                condition=models.Q(status="pending"),
                name="reviews_one_pending_change_per_row",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy change {self.pk}: {self.operation} {self.rule_name} ({self.status})"

    @property
    def target_label(self) -> str:
        from reviews import governed

        spec = governed.get(self.target)
        return spec.label if spec else self.target


class NotificationPreference(models.Model):
    """What a person does not want mailed. Only the non-essential notices can be
    turned off; decisions on their submissions, quorum alerts and a broken audit
    chain always go."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    case_opened = models.BooleanField(default=True, help_text="Mail me when a case opens for the committee.")
    sla_reminders = models.BooleanField(default=True, help_text="Mail me when a case's SLA is near or past.")

    def __str__(self) -> str:
        return f"notification settings of {self.user}"


class NotificationSent(models.Model):
    """A notice that went out, so that each is sent once (a job run twice, or the
    periodic SLA scan, finds it here)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=30)
    key = models.CharField(max_length=100, help_text="What makes this notice unique for the case, e.g. its due time.")
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "kind", "key"], name="reviews_notice_once")]

    def __str__(self) -> str:
        return f"{self.kind} for case {self.case_id}"
