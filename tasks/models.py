"""Execution tasks (the legacy `execution_tasks` table) and the API keys the AI side uses."""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from simple_history.models import HistoricalRecords


class TaskType(models.TextChoices):
    IMPLEMENT_IDEA = "implement_idea", "Implement idea"
    IDEA_IMPLEMENTATION = "idea_implementation", "Idea implementation"
    SELF_IMPROVEMENT = "self_improvement", "Self improvement"


class TaskStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    HELD = "held", "Held for review"
    DENIED = "denied", "Denied"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value)


class HistogramField(models.JSONField):
    """A rollup's dense histogram, a list of integers: `bigint[]` on PostgreSQL, where a
    fold adds a delta to it in the database (`tasks_histogram_add`, migration 0017:
    a few array element writes, where a jsonb list had to be printed, parsed and written
    again whole); JSON text elsewhere (SQLite), as a JSONField. Either way Python sees a
    list of ints."""

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "bigint[]"
        return super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor == "postgresql":
            return None if value is None else list(value)
        return super().get_db_prep_value(value, connection, prepared)

    def get_placeholder(self, value, compiler, connection):
        # Having one keeps Django's bulk_create on PostgreSQL off its UNNEST(%s::bigint[][])
        # form, which cannot hold lists of several lengths; rows are inserted as VALUES.
        return "%s"

    def from_db_value(self, value, expression, connection):
        if isinstance(value, list):  # PostgreSQL's array, already decoded
            return value
        return super().from_db_value(value, expression, connection)


class TaskSource(models.TextChoices):
    API = "api", "Registered through the API"
    BACKFILL = "backfill", "Backfilled history"
    LEGACY = "legacy", "Adopted from the legacy table"


class ApiKey(models.Model):
    """A key the AI side authenticates with. Only a SHA-256 of the secret is stored:
    the key is 32 random bytes, so a fast hash is safe and keeps the gate fast."""

    class Scope(models.TextChoices):
        TASKS = "tasks", "Register and report tasks"
        REPORTS = "reports", "Submit FSAR reports"
        BACKFILL = "backfill", "Backfill finished tasks"
        READ = "read", "Read tasks and metrics"
        MODELS = "models", "Register AI model versions"
        AUDITS = "audits", "Send adversarial audit results"

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="api_keys",
        help_text="The person answerable for what this key submits.",
    )
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class ActorHistory(models.Model):
    """Extra columns on historical task rows: which API key acted, when one did."""

    history_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )

    class Meta:
        abstract = True


class ExecutionTask(models.Model):
    """One unit of work the AI side runs. The first columns are the legacy table's
    exactly (migration 0001); FSAR's own columns come in later migrations."""

    external_id = models.CharField(max_length=200, unique=True)
    task_type = models.CharField(max_length=40, choices=TaskType.choices)
    status = models.CharField(max_length=20, choices=TaskStatus.choices)
    payload = models.JSONField(default=dict, db_default=models.Value({}, models.JSONField()))
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    cost_micros = models.BigIntegerField(null=True, blank=True)
    tokens = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="", db_default="")
    # Added by FSAR (migration 0002 onward); all nullable, so no table rewrite.
    ai_model = models.TextField(null=True, blank=True)
    customer_ref = models.CharField(max_length=200, null=True, blank=True)
    proposal_ref = models.CharField(max_length=200, null=True, blank=True)
    source = models.CharField(max_length=20, choices=TaskSource.choices, null=True, blank=True)
    # No foreign key constraint in the database (migration 0016): keys are never deleted (revoked
    # instead; the admin cannot delete one), the key is always the authenticated one, and the
    # deferred check looked the same key up again for every task written at commit, a tenth
    # of a 10,000-task backfill's database time. Deleting a key through the ORM still clears it.
    submitted_by = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks", db_constraint=False
    )
    gate_decision = models.CharField(max_length=10, null=True, blank=True)
    gate_reason = models.TextField(null=True, blank=True)
    gate_policy = models.CharField(max_length=200, null=True, blank=True)
    gate_case = models.CharField(max_length=100, null=True, blank=True)
    # Finished, and not yet added to the metrics rollups: the worker's queue
    # (tasks.rollups.drain_pending); the metrics read these tasks from the raw rows.
    rollup_pending = models.BooleanField(default=False, db_default=False)
    # Its history is read by task (`id`), date, user and key; never searched by external_id or
    # the registering key's column: those are not indexed there (each index costs every write
    # of a task one more index insert). The user, like the key (ActorHistory), has no foreign
    # key constraint in the database: it would check every history row's user again when its
    # transaction commits, a tenth of a 10,000-task backfill's database time (migration
    # 0014); deleting a user still clears its history rows' user (Django's SET_NULL).
    history = HistoricalRecords(
        bases=[ActorHistory],
        excluded_fields=["payload", "rollup_pending"],
        no_db_index=["external_id", "submitted_by"],
        user_db_constraint=False,
    )

    class Meta:
        db_table = "execution_tasks"
        indexes = [
            # Every write of a task (registration, start, finish: none is a HOT update) inserts
            # into each index whose condition the new row meets, so an index covers only the
            # rows its readers ask for (migration 0012).
            # The task list's filters, newest first (tasks.selectors.task_page).
            models.Index(fields=["status", "-id"], name="tasks_status_id"),
            models.Index(fields=["task_type", "-id"], name="tasks_type_id"),
            models.Index(
                fields=["ai_model", "-id"], condition=models.Q(ai_model__isnull=False), name="tasks_model_set_id"
            ),
            models.Index(
                fields=["customer_ref", "-id"],
                condition=models.Q(customer_ref__isnull=False),
                name="tasks_customer_set_id",
            ),
            models.Index(
                fields=["proposal_ref", "-id"],
                condition=models.Q(proposal_ref__isnull=False),
                name="tasks_proposal_set_id",
            ),
            # Running tasks by start time (tasks.services.fail_abandoned_tasks).
            models.Index(fields=["started_at"], condition=models.Q(status="running"), name="tasks_running_started"),
            # Metrics (tasks/metrics.py): a finished_at range read from the index alone.
            models.Index(
                fields=["finished_at"],
                include=["task_type", "ai_model", "status", "duration_ms"],
                condition=models.Q(finished_at__isnull=False),
                name="tasks_finished_at_cover",
            ),
            # The gate's model metrics: a model's last N tasks FSAR saw finish, by finish time
            # (reviews.selectors.model_metric); migration 0008.
            models.Index(
                fields=["ai_model", "-finished_at", "-id"],
                include=["status", "duration_ms"],
                condition=models.Q(status__in=["succeeded", "failed"], source="api"),
                name="tasks_model_live_finished",
            ),
            # Backfilled tasks in a finished_at window, which the metrics page marks
            # (tasks.selectors.backfilled_counts); migration 0008.
            models.Index(
                fields=["finished_at"],
                include=["task_type", "ai_model"],
                condition=models.Q(source="backfill", status__in=["succeeded", "failed"]),
                name="tasks_backfilled_finished",
            ),
            # The tasks a review case decides on, and the keys that registered them
            # (reviews.selectors.submitters_of); migration 0008.
            # The finished tasks not yet in the metrics rollups (tasks.rollups); migration 0009.
            models.Index(
                fields=["finished_at"],
                include=["task_type", "ai_model", "status", "duration_ms"],
                condition=models.Q(rollup_pending=True),
                name="tasks_rollup_pending",
            ),
            models.Index(
                fields=["gate_case", "submitted_by"],
                condition=models.Q(gate_case__isnull=False),
                name="tasks_gate_case",
            ),
            # The tasks a case holds, oldest first (reviews.selectors.held_tasks_for_case: the
            # case page and the case's decision). tasks_gate_case also keeps the tasks a case has
            # released, so a case that decided on thousands read them all for a page of held ones;
            # only a held task's write enters this one (migration 0015).
            models.Index(fields=["gate_case", "id"], condition=models.Q(status="held"), name="tasks_case_held"),
        ]

    def __str__(self) -> str:
        return f"{self.task_type} {self.external_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def gate_case_id(self) -> int | None:
        """The review case holding or deciding this task, as the integer the API shows.
        `gate_case` stays text: a task refers upward by plain strings (DESIGN.md)."""
        return int(self.gate_case) if self.gate_case and self.gate_case.isdigit() else None


class TaskMetricsRollup(models.Model):
    """Finished tasks per UTC hour (and per six hours, and per UTC day) × task type × AI model: exact
    counts, sums and maxima, and a duration histogram for percentiles. Kept by
    tasks/rollups.py, repaired from `execution_tasks` by `rebuild_metrics_rollups`;
    see docs/metrics.md."""

    class Period(models.TextChoices):
        HOUR = "hour", "Hour"
        SIX_HOURS = "6h", "Six hours (00, 06, 12, 18 UTC)"
        DAY = "day", "Day"

    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    task_type = models.CharField(max_length=40)
    # (has_model, model) instead of a nullable ai_model, so that the key is unique on
    # every database and "no model" never collides with a model named "".
    has_model = models.BooleanField()
    model = models.TextField(blank=True)
    count = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    timed = models.BigIntegerField(default=0)
    sum_ms = models.BigIntegerField(default=0)
    max_ms = models.BigIntegerField(null=True)
    # Of `count`, the tasks the AI side backfilled (source=backfill): the metrics page marks them.
    backfilled = models.BigIntegerField(default=0, db_default=0)
    # [first bucket index (tasks.histograms.bucket_index), its tasks, the next bucket's, …]; [] when empty.
    histogram = HistogramField(default=list)

    class Meta:
        db_table = "tasks_metrics_rollup"
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "task_type", "has_model", "model"], name="tasks_rollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.start:%Y-%m-%d %H:00} {self.task_type} {self.ai_model or '(no model)'}"

    @property
    def ai_model(self) -> str | None:
        return self.model if self.has_model else None
