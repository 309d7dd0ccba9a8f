"""Backfill: finished tasks of the past stored in bulk, all or nothing
(`POST /api/v1/tasks/bulk`).

Three steps: `backfill_validate` checks every row (the first bad one is a 422
naming its index and field), `backfill_compare` splits the rows into new ones and
ones already stored with the same values (a retry: "unchanged"; other values: a
409), and `_insert` writes the new ones, their history rows and their rollups in
one transaction. On PostgreSQL the insert is set-based: the tasks COPYed into a
temporary table, one statement inserting the tasks from that table and copying their
history rows from what it inserted, then the rollup fold computed by the database from
the same table (`rollup_fold.fold_select`; docs/metrics.md, docs/benchmarks.md);
elsewhere (SQLite) simple-history's bulk path and `rollups.fold_tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from tasks import rollup_fold, rollups
from tasks.models import ExecutionTask, TaskSource, TaskStatus
from tasks.services import BULK_MAX_ROWS, Actor, InvalidTaskInput, TaskConflict, duration_ms


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# 34 ms for a request's 10,000 rows against 15 ms.
@dataclass
class BackfillRow:
    external_id: str
    task_type: str
    status: str
    started_at: datetime
    finished_at: datetime
    ai_model: str | None = None
    customer_ref: str | None = None
    cost_micros: int | None = None
    tokens: int | None = None
    error: str = ""


@dataclass(frozen=True)
class BackfillResult:
    created: int
    unchanged: int


BACKFILL_COMPARED = (
    "task_type",
    "status",
    "started_at",
    "finished_at",
    "ai_model",
    "customer_ref",
    "cost_micros",
    "tokens",
    "error",
)


# No backfilled task may start before this: older timestamps are mistakes (a Unix 0, a
# year typed wrong), never history an AI operation has. A fixed floor rather than the
# key's creation: backfills exist to bring in the history from before FSAR's keys.
BACKFILL_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def backfill_validate(rows: list[BackfillRow], *, now: datetime) -> None:
    """Check every row before anything is stored; the first bad one raises
    InvalidTaskInput naming its index and field (`tasks[3].started_at`).

    A row must be finished (succeeded or failed), its times aware of their time
    zone, finished no earlier than started, not finished in the future, not
    started before BACKFILL_EARLIEST, and its external_id not repeated in the request."""
    if len(rows) > BULK_MAX_ROWS:
        raise InvalidTaskInput(f"at most {BULK_MAX_ROWS} tasks per request, got {len(rows)}", field="tasks")
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if row.status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            raise _bad_row(index, "status", "must be succeeded or failed")
        for field in ("started_at", "finished_at"):
            if getattr(row, field).utcoffset() is None:
                raise _bad_row(index, field, "has no time zone (add Z or an offset)")
        if row.started_at < BACKFILL_EARLIEST:
            raise _bad_row(
                index, "started_at", f"is before {BACKFILL_EARLIEST:%Y-%m-%d}, the earliest start a backfill takes"
            )
        if row.finished_at < row.started_at:
            raise _bad_row(index, "finished_at", "is before started_at")
        if row.finished_at > now:
            raise _bad_row(index, "finished_at", "is in the future")
        if row.external_id in seen:
            raise _bad_row(index, "external_id", f"{row.external_id!r} appears twice in this request")
        seen.add(row.external_id)


def _bad_row(index: int, field: str, problem: str) -> InvalidTaskInput:
    where = f"tasks[{index}].{field}"
    return InvalidTaskInput(f"{where} {problem}", field=where)


def backfill_compare(rows: list[BackfillRow]) -> tuple[list[BackfillRow], int]:
    """The rows not stored yet, and how many are stored already with the same values.
    A row stored with other values raises TaskConflict naming its index and the fields."""
    ids = [row.external_id for row in rows]
    stored: dict[str, tuple] = {}
    if connection.vendor == "postgresql":
        # One array parameter: an IN list of 10,000 placeholders cost more to split and
        # bind in psycopg than the query itself.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT external_id, {', '.join(BACKFILL_COMPARED)} FROM execution_tasks "  # noqa: S608 - fixed names
                "WHERE external_id = ANY(%s)",
                [ids],
            )
            for external_id, *values in cursor.fetchall():
                stored[external_id] = tuple(values)
    else:
        for start in range(0, len(ids), 1000):  # SQLite's parameter limit
            found = ExecutionTask.objects.filter(external_id__in=ids[start : start + 1000]).order_by()
            for external_id, *values in found.values_list("external_id", *BACKFILL_COMPARED):
                stored[external_id] = tuple(values)
    new_rows, unchanged = [], 0
    for index, row in enumerate(rows):
        old = stored.get(row.external_id)
        if old is None:
            new_rows.append(row)
            continue
        differences = [f for f, value in zip(BACKFILL_COMPARED, old, strict=True) if value != getattr(row, f)]
        if differences:
            raise TaskConflict(
                f"tasks[{index}]: external_id {row.external_id!r} already exists with different "
                f"{', '.join(differences)}",
                fields=differences,
                row=index,
            )
        unchanged += 1
    return new_rows, unchanged


def tasks_backfill(*, actor: Actor, rows: list[BackfillRow]) -> BackfillResult:
    """Store finished tasks of the past, all or nothing.

    Rows are checked first (`backfill_validate`) and the first bad one raises
    InvalidTaskInput naming its index and field. A row whose external_id already
    exists with the same values is counted as unchanged (so a retried backfill is
    safe); with other values it is a conflict. Backfilled tasks skip the gate and
    are never billed (`source=backfill`, and no task_finished signal is sent); the
    metrics rollups count them in the same transaction, but the gate's model
    metrics never do: they read only tasks FSAR saw run.
    """
    backfill_validate(rows, now=timezone.now())
    new_rows, unchanged = backfill_compare(rows)
    try:
        with transaction.atomic():
            if new_rows:
                _insert(new_rows, actor=actor)
    except IntegrityError as exc:
        raise TaskConflict("another request stored some of these external_ids meanwhile; retry") from exc
    return BackfillResult(created=len(new_rows), unchanged=unchanged)


def _insert(rows: list[BackfillRow], *, actor: Actor) -> None:
    if connection.vendor == "postgresql":
        _insert_postgresql(rows, actor=actor)
        return
    tasks = [_task(row, actor=actor) for row in rows]
    bulk_create_with_history(
        tasks,
        ExecutionTask,
        batch_size=1000,
        default_user=actor.user,
        default_change_reason="backfilled",
        custom_historical_attrs={"history_api_key": actor.api_key},
    )
    rollups.fold_tasks(tasks)  # the metrics rollups count them in the same transaction


def _task(row: BackfillRow, *, actor: Actor) -> ExecutionTask:
    return ExecutionTask(
        external_id=row.external_id,
        task_type=row.task_type,
        status=row.status,
        payload={},
        created_at=row.started_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=duration_ms(row.started_at, row.finished_at),
        cost_micros=row.cost_micros,
        tokens=row.tokens,
        error=row.error,
        ai_model=row.ai_model,
        customer_ref=row.customer_ref,
        source=TaskSource.BACKFILL,
        submitted_by=actor.api_key,
    )


# The temporary table's columns and their PostgreSQL types, in the order _insert_postgresql writes them.
_COLUMNS = (
    ("external_id", "text"),
    ("task_type", "text"),
    ("status", "text"),
    ("created_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("duration_ms", "bigint"),
    ("cost_micros", "bigint"),
    ("tokens", "int"),
    ("error", "text"),
    ("ai_model", "text"),
    ("customer_ref", "text"),
)


def _insert_postgresql(rows: list[BackfillRow], *, actor: Actor) -> None:
    """The tasks COPYed into a temporary table; one statement inserting the tasks from
    that table and copying their history rows from what that INSERT returns (`WITH
    new_rows AS (INSERT … RETURNING *) INSERT INTO history … SELECT … FROM new_rows`: no
    ids fetched and looked up again); then the rollup fold computed by the database from
    the same table (tasks/rollup_fold.py), which locks the rollup rows it adds to until
    the commit: after the insert, so that they are held for the fold and commit only.
    (One array parameter per column, for unnest, cost more than the COPY: psycopg
    dumps a list element by element, about 2.5 µs each, 0.3 s for 10,000 rows of 12
    columns.)"""
    from core.history import copy_history_sql

    columns = ", ".join(name for name, _ in _COLUMNS)
    durations = [duration_ms(row.started_at, row.finished_at) for row in rows]
    history_sql, history = copy_history_sql(
        ExecutionTask,
        connection,
        reason="backfilled",
        user=actor.user,
        source="new_rows",
        history_api_key_id=actor.api_key.pk if actor.api_key else None,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE backfill_rows ("  # noqa: S608 - fixed names
            + ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
            + ") ON COMMIT DROP"
        )
        with cursor.copy(f"COPY backfill_rows ({columns}) FROM STDIN") as copy:
            write = copy.write_row
            for r, duration in zip(rows, durations, strict=True):
                write((r.external_id, r.task_type, r.status, r.started_at, r.started_at, r.finished_at, duration,
                       r.cost_micros, r.tokens, r.error, r.ai_model, r.customer_ref))  # fmt: skip
        cursor.execute(
            f"WITH new_rows AS (INSERT INTO execution_tasks ({columns}, payload, source, submitted_by_id) "  # noqa: S608 - fixed names
            f"SELECT {columns}, '{{}}'::jsonb, %s, %s FROM backfill_rows RETURNING *) {history_sql}",
            [TaskSource.BACKFILL.value, actor.api_key.pk if actor.api_key else None, *history],
        )
        # The rollups from the same temporary table, computed by the database (no Python per task).
        rollup_fold.fold_select(
            f"SELECT finished_at, task_type, ai_model, status, duration_ms, '{TaskSource.BACKFILL.value}' "  # noqa: S608 - a constant
            "FROM backfill_rows"
        )
        cursor.execute("DROP TABLE backfill_rows")
