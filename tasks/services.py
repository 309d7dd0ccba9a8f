"""Every state change of an execution task goes through one function here.

Each is atomic, locks the row it changes, checks the transition, and records
who (user and API key) and why in the task's history.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.errors import Refused
from core.history import (
    copy_changed_sql,
    inserts_in_one_statement,
    save_with_history,
    update_with_history,
    updates_in_one_statement,
)
from core.prepared import GenericRead
from tasks import decisions
from tasks.auth import KEY_PREFIX, generate_secret
from tasks.gate import (
    GateDecision,
    GateNeedsTransaction,
    GateUnavailable,
    ReadWithTask,
    ask_gate,
    gate_deadline,
    recheck_gate,
    recheck_read_with_task,
)
from tasks.models import ApiKey, ExecutionTask, TaskSource, TaskStatus
from tasks.signals import FINISHED_ROW, finish_writes, task_finished

logger = logging.getLogger(__name__)

BULK_MAX_ROWS = 10_000


class TaskError(Refused):
    """A request the task rules refuse; `status_code` is the HTTP answer."""


class TaskConflict(TaskError):
    status_code = 409


class InvalidTransition(TaskError):
    status_code = 409


class GateClosed(TaskError):
    status_code = 409


class InvalidTaskInput(TaskError):
    status_code = 422


@dataclass(frozen=True)
class Actor:
    """Who is acting: a person, an API key (whose owner is the person), or the system."""

    user: Any = None
    api_key: ApiKey | None = None

    @classmethod
    def for_key(cls, api_key: ApiKey) -> Actor:
        return cls(user=api_key.owner, api_key=api_key)

    @classmethod
    def system(cls) -> Actor:
        return cls()


def _save_with_history(
    task: ExecutionTask, *, actor: Actor, reason: str, fields: tuple[str, ...] | None = None
) -> None:
    """Save the task and add its history row: who (user and API key) and why.
    `fields`: for a task row-locked and changed only in those, write just them (on
    PostgreSQL with its history row, in one statement: core.history.update_with_history).

    A change of a task that exists is announced on commit to the clients waiting
    on its decision (`GET /api/v1/tasks/{id}/decision?wait=`): every service that
    changes a task's status or gate fields saves through here. A new task has no
    waiters yet, so registration announces nothing."""
    new = task._state.adding
    api_key_id = actor.api_key.pk if actor.api_key else None
    if fields is not None and not new:
        update_with_history(task, fields, reason=reason, user=actor.user, history_api_key_id=api_key_id)
    else:
        save_with_history(task, reason=reason, user=actor.user, history_api_key_id=api_key_id)
    if not new:
        decisions.announce(task.pk)


# What a gate decision changes in a task (_apply_decision), and what starting it does too.
GATE_FIELDS = ("status", "gate_decision", "gate_reason", "gate_policy", "gate_case")
START_FIELDS = (*GATE_FIELDS, "started_at")
# What finishing a task changes (_finish).
FINISH_FIELDS = ("status", "finished_at", "rollup_pending", "duration_ms", "cost_micros", "tokens", "error")


# Fields that make two registrations of one external_id "the same task".
REGISTRATION_FIELDS = ("task_type", "ai_model", "customer_ref", "proposal_ref", "payload")


def _registration_differences(task: ExecutionTask, wanted: dict[str, Any]) -> list[str]:
    return [name for name in REGISTRATION_FIELDS if getattr(task, name) != wanted[name]]


def task_register(
    *,
    actor: Actor,
    external_id: str,
    task_type: str,
    ai_model: str | None = None,
    customer_ref: str | None = None,
    proposal_ref: str | None = None,
    payload: dict | None = None,
) -> tuple[ExecutionTask, bool]:
    """Register a task and ask the gate whether it may run.

    Idempotent on `external_id`: the same fields again return the existing task
    (created=False); different fields raise TaskConflict naming them. When the
    gate cannot decide, GateUnavailable propagates and nothing is stored.

    An API key acts only on its own tasks: another key's `external_id` answers
    ExecutionTask.DoesNotExist (404), never that task. A task stored as allowed
    (`registered`) is returned with the gate's answer now (`recheck_gate`), not
    the one it got then: a retry cannot read a stale `allow`.
    """
    wanted = {
        "task_type": task_type,
        "ai_model": ai_model,
        "customer_ref": customer_ref,
        "proposal_ref": proposal_ref,
        "payload": payload or {},
    }
    task = ExecutionTask(
        external_id=external_id,
        status=TaskStatus.REGISTERED,
        source=TaskSource.API,
        submitted_by=actor.api_key,
        created_at=timezone.now(),
        **wanted,
    )
    # The common case is a new external_id, so insert first and look for an earlier
    # registration only when the insert or the gate says there may be one.
    try:
        _store_registration(task, actor=actor)
    except (IntegrityError, GateUnavailable, TaskError):
        # A retry (or another request a moment ago) registered the same external_id:
        # answer with that task, even when the gate cannot decide right now (the
        # case, if any, rolled back with the insert).
        existing = ExecutionTask.objects.filter(external_id=external_id).first()
        if existing is None:
            raise
        if not _owns(actor, existing):
            raise ExecutionTask.DoesNotExist(f"No task with external_id {external_id!r}.") from None
        existing = _same_registration(existing, wanted)
        if existing.status == TaskStatus.REGISTERED:
            existing = _recheck_registered(existing.pk, actor=actor)
        return existing, False
    return task, True


def _owns(actor: Actor, task: ExecutionTask) -> bool:
    """An API key owns the tasks it registered (or backfilled), and no others: not
    another key's, even one of the same person's. A person or the system acting
    without a key (services, jobs, the admin) is not limited this way."""
    return actor.api_key is None or task.submitted_by_id == actor.api_key.pk


@transaction.atomic
def _recheck_registered(task_id: int, *, actor: Actor) -> ExecutionTask:
    """A re-registration of a task stored as allowed: ask the gate again, and when
    the answer is no longer allow, hold or deny the task with the new reason."""
    task = _locked(task_id, actor=actor)
    if task.status == TaskStatus.REGISTERED:
        decision = recheck_gate(task)
        if decision.decision != "allow":
            _apply_decision(task, decision)
            _save_with_history(task, actor=actor, reason=f"registered again; gate now: {decision.decision}")
    return task


def _store_registration(task: ExecutionTask, *, actor: Actor) -> None:
    """Ask the gate and store the task with its decision, all or nothing.

    Most decisions write nothing, so where the task and its history row go in
    with one statement (PostgreSQL) the gate is first asked outside a
    transaction and that statement commits alone: two round trips fewer on the
    hot path. A gate that needs to write (a review case) raises
    GateNeedsTransaction, and is asked again inside a transaction with the insert."""

    def store(decision: GateDecision) -> None:
        _apply_decision(task, decision)
        _save_with_history(task, actor=actor, reason=f"registered; gate: {decision.decision}")

    if inserts_in_one_statement(ExecutionTask) and not transaction.get_connection().in_atomic_block:
        try:
            return store(ask_gate(task))
        except GateNeedsTransaction:
            pass
    with transaction.atomic():
        store(ask_gate(task))


def _same_registration(task: ExecutionTask, wanted: dict[str, Any]) -> ExecutionTask:
    differences = _registration_differences(task, wanted)
    if differences:
        raise TaskConflict(
            f"external_id {task.external_id!r} is already registered with different {', '.join(differences)}",
            fields=differences,
            task_id=task.pk,
        )
    return task


def _apply_decision(task: ExecutionTask, decision: GateDecision) -> None:
    task.gate_decision = decision.decision
    task.gate_reason = decision.reason
    task.gate_policy = decision.policy
    task.gate_case = None if decision.case is None else str(decision.case)
    task.status = {
        "allow": TaskStatus.REGISTERED,
        "hold": TaskStatus.HELD,
        "deny": TaskStatus.DENIED,
    }[decision.decision]


def _locked(task_id: int, *, actor: Actor | None = None, lock: bool = True) -> ExecutionTask:
    """The task, row-locked (unless `lock` is False). For an API key, only one of its
    own tasks: another key's answers exactly as a task that does not exist."""
    return _read_task(task_id, actor=actor, lock=lock)[0]


def _read_task(
    task_id: int, *, actor: Actor | None = None, lock: bool = True, with_gate: ReadWithTask | None = None
) -> tuple[ExecutionTask, tuple]:
    """_locked's task, and the values of `with_gate` (the re-check gate's own read),
    read beside it in the same statement (empty without one)."""
    # A written-out query (start, finish and cancel each read one task this way): a
    # queryset costs more to compile than the read itself (docs/benchmarks.md).
    connection = transaction.get_connection()
    by_key = actor is not None and actor.api_key is not None
    read = _read_sql(connection, by_key=by_key, lock=lock, with_gate=with_gate)
    params = [task_id, actor.api_key.pk] if by_key else [task_id]
    with connection.cursor() as cursor:
        if read.generic is not None and not connection.in_atomic_block and GenericRead.usable(connection):
            read.generic.run(cursor, params)
        else:
            cursor.execute(read.sql, params)
        row = cursor.fetchone()
    if row is None:
        raise ExecutionTask.DoesNotExist(f"No task with id {task_id}.")
    width = len(read.attnames)
    return read.task(row[:width], connection), tuple(row[width:])


@dataclass(frozen=True)
class _Read:
    sql: str
    attnames: list[str]
    # Per column that has any: its position, and what turns its database value into
    # the ORM's (JSON decoded, SQLite's booleans and datetimes), as the query compiler would.
    converters: list[tuple[int, Any, list]]
    # start's read with the gate's state (outside a transaction, on PostgreSQL): prepared
    # once per connection and run with a generic plan (core.prepared), as it reads by key.
    generic: GenericRead | None = None

    def task(self, row, connection) -> ExecutionTask:
        """The task a row of this read (its columns, in order) holds."""
        values = list(row)
        for position, col, steps in self.converters:
            for step in steps:
                if values[position] is not None:
                    values[position] = step(values[position], col, connection)
        return ExecutionTask.from_db(connection.alias, self.attnames, values)


_READS: dict[tuple[str, bool, bool, ReadWithTask | None], _Read] = {}


def only_by_id(conditions: str) -> str:
    """`conditions` on a task read or written by id, as one expression no index can serve,
    so that the primary key is the only way in. Written as plain conditions beside
    `id = %s`, the planner weighed other indexes against the primary key (one row estimated
    either way), and where the statistics did not yet know the rows (a key newer than the
    table's last ANALYZE, or tasks started since) it took the key's own index, or the
    running tasks' one, walking every task the key had registered, or every running one,
    on each start and finish: a cost growing with them until the next ANALYZE (seen at 321
    rows, 0.19 ms; tasks/tests/test_owner_plan.py). A CASE hides its conditions from the
    planner's choice of index (and from partial indexes' predicates); NULL is not true."""
    return f"CASE WHEN {conditions} THEN true ELSE false END"


def _read_sql(connection, *, by_key: bool, lock: bool, with_gate: ReadWithTask | None = None) -> _Read:
    key = (connection.vendor, by_key, lock, with_gate)
    if key not in _READS:
        meta = ExecutionTask._meta
        fields = meta.concrete_fields
        qn = connection.ops.quote_name
        table = qn(meta.db_table)
        if with_gate is None:
            sql = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {table} WHERE id = %s"
            if by_key:
                sql += f" AND {only_by_id('submitted_by_id = %s')}"
            if lock and connection.features.has_select_for_update:
                sql += " FOR UPDATE"
        else:  # the gate's row beside the task's (NULLs where it has none); never locked
            sql = (
                f"SELECT {', '.join(f't.{qn(f.column)}' for f in fields)}, g.* FROM {table} t "
                f"LEFT JOIN LATERAL ({with_gate.sql(connection)}) g ON true WHERE t.id = %s"
            )
            if by_key:
                sql += f" AND {only_by_id('t.submitted_by_id = %s')}"
            if lock:
                raise ValueError("the gate's read goes with an unlocked read of the task")
        converters = []
        for position, field in enumerate(fields):
            col = field.get_col(meta.db_table)
            steps = [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]
            if steps:
                converters.append((position, col, steps))
        generic = None
        if with_gate is not None and connection.vendor == "postgresql":
            generic = GenericRead("task_read_with_gate", sql, ("bigint", "bigint") if by_key else ("bigint",))
        _READS[key] = _Read(sql=sql, attnames=[f.attname for f in fields], converters=converters, generic=generic)
    return _READS[key]


def _gate_closed(task: ExecutionTask, why: str) -> GateClosed:
    return GateClosed(
        f"gate closed: {why}" + (f" ({task.gate_reason})" if task.gate_reason else ""),
        decision=task.gate_decision,
        policy=task.gate_policy,
        case=task.gate_case_id,
    )


def task_start(*, task_id: int, actor: Actor) -> ExecutionTask:
    """registered → running, if the gate still allows it.

    The gate's answer is checked again at the moment of use (`recheck_gate`): a
    pause, a revoked or lapsed approval, a revision that voided the votes, a
    rejected case or a policy change since registration. When the answer is no
    longer allow, the task goes back to `held` (on the case it now waits for) or
    `denied` with the new reason, that change is committed, and GateClosed (409)
    names it. A held or denied task answers GateClosed; starting a task that is
    already running is a harmless retry and changes nothing. When the gate cannot
    decide, GateUnavailable (503) and nothing changes."""
    started = _start_at_once(task_id=task_id, actor=actor)
    if started is not None:
        return started
    task, refused = _start(task_id=task_id, actor=actor)
    if refused:
        raise _gate_closed(task, f"the gate now says {task.gate_decision}; the task is {task.status}")
    return task


def _start_at_once(*, task_id: int, actor: Actor) -> ExecutionTask | None:
    """The common start, without a transaction of its own (PostgreSQL, outside one):
    the task read without a lock (with what the gate reads on every start, its
    ReadWithTask: the gate's state row, in the same statement and under the gate's
    deadline), the gate asked again, and the task set running
    with its history row by one statement that is a compare-and-set on everything
    the answer was given for (status and gate fields as read): two round trips
    (BEGIN, COMMIT) fewer. None when the locked path (`_start`) must answer instead:
    the task is not `registered`, the answer is not allow (a refusal is written
    under the row lock, where the gate is asked again), the gate would write (a
    case), or the task changed since it was read. A task that does not exist (or is
    another key's) and a gate that cannot decide answer as on the locked path."""
    if not updates_in_one_statement(ExecutionTask) or transaction.get_connection().in_atomic_block:
        return None
    with_gate = recheck_read_with_task()
    try:
        # The gate's read, in the task's, is bounded by the gate's deadline as its own would be.
        with gate_deadline() if with_gate is not None else nullcontext():
            task, gate_read = _read_task(task_id, actor=actor, lock=False, with_gate=with_gate)
    except DatabaseError:
        if with_gate is None:
            raise
        return None  # past the deadline (or failing): the locked path asks the gate on its own and answers
    if task.status != TaskStatus.REGISTERED:
        return None
    as_read = {name: getattr(task, name) for name in GATE_FIELDS}
    try:
        decision = recheck_gate(task, read=gate_read if with_gate is not None else None)
    except GateNeedsTransaction:
        return None
    if decision.decision != "allow":
        return None
    _apply_decision(task, decision)
    task.status = TaskStatus.RUNNING
    task.started_at = timezone.now()
    api_key_id = actor.api_key.pk if actor.api_key else None
    written = update_with_history(
        task, START_FIELDS, reason="started", user=actor.user, history_api_key_id=api_key_id, only_if=as_read
    )
    if not written:
        return None
    decisions.announce(task.pk)
    return task


@transaction.atomic
def _start(*, task_id: int, actor: Actor) -> tuple[ExecutionTask, bool]:
    task = _locked(task_id, actor=actor)
    if task.status == TaskStatus.RUNNING:
        return task, False
    if task.status in (TaskStatus.HELD, TaskStatus.DENIED):
        raise _gate_closed(task, f"the task is {task.status}")
    if task.status != TaskStatus.REGISTERED:
        raise InvalidTransition(f"cannot start a task that is {task.status}")
    decision = recheck_gate(task)
    _apply_decision(task, decision)
    if decision.decision != "allow":
        reason = f"start refused; gate now: {decision.decision}"
        _save_with_history(task, actor=actor, reason=reason, fields=GATE_FIELDS)
        return task, True
    task.status = TaskStatus.RUNNING
    task.started_at = timezone.now()
    _save_with_history(task, actor=actor, reason="started", fields=START_FIELDS)
    return task, False


def task_finish(
    *,
    task_id: int,
    actor: Actor,
    outcome: str,
    cost_micros: int | None = None,
    tokens: int | None = None,
    error: str = "",
) -> ExecutionTask:
    """running → succeeded | failed, recording duration, cost and tokens, with what
    other apps write when a task finishes (tasks.signals.finish_writes: billing's
    usage), all or nothing.

    Repeating the same finish is a harmless retry; a different one is a conflict."""
    if outcome not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
        raise InvalidTaskInput("outcome must be 'succeeded' or 'failed'", field="outcome")
    finish = {"outcome": outcome, "cost_micros": cost_micros, "tokens": tokens, "error": error}
    if updates_in_one_statement(ExecutionTask):
        # The common finish is one statement, which commits alone (an implicit
        # transaction) unless a receiver of task_finished must run in its transaction.
        with transaction.atomic() if task_finished.has_listeners() else nullcontext():
            finished = _finish_at_once(task_id=task_id, actor=actor, **finish)
            if finished is not None:
                decisions.announce(finished.pk)
                _announce_finished(finished)
                return finished
    return _finish_locked(task_id=task_id, actor=actor, **finish)


@transaction.atomic
def _finish_locked(
    *, task_id: int, actor: Actor, outcome: str, cost_micros: int | None, tokens: int | None, error: str
) -> ExecutionTask:
    task = _locked(task_id, actor=actor)
    if task.is_finished:
        same = (
            task.status == outcome
            and task.cost_micros == cost_micros
            and task.tokens == tokens
            and task.error == (error or "")
        )
        if same:
            return task
        raise InvalidTransition(f"the task already finished as {task.status}")
    if task.status != TaskStatus.RUNNING:
        raise InvalidTransition(f"cannot finish a task that is {task.status}; start it first")
    _finish(task, outcome=outcome, cost_micros=cost_micros, tokens=tokens, error=error, now=timezone.now())
    _save_with_history(task, actor=actor, reason=f"finished: {outcome}", fields=FINISH_FIELDS)
    for write in finish_writes.values():
        write.run(task)
    _announce_finished(task)
    return task


def _finish_at_once(
    *, task_id: int, actor: Actor, outcome: str, cost_micros: int | None, tokens: int | None, error: str
) -> ExecutionTask | None:
    """The common finish on PostgreSQL: one statement that finishes the task only
    while it is `running` (and the key's own), as `_finish` would (its duration
    computed by the database from `started_at`, to the millisecond as `duration_ms`
    does), copies its history row, makes every finish write (billing's usage) from
    the finished row, and returns the task: no separate locked read, and outside a
    transaction none of its own. None (nothing written) when the locked path must
    answer: a retry, a task not running, another key's, or one that does not exist."""
    connection = transaction.get_connection()
    statement, params = _finish_statement(
        connection, task_id=task_id, actor=actor, outcome=outcome, cost_micros=cost_micros, tokens=tokens, error=error
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _read_sql(connection, by_key=actor.api_key is not None, lock=False).task(row, connection)


def _finish_statement(
    connection, *, task_id: int, actor: Actor, outcome: str, cost_micros: int | None, tokens: int | None, error: str
) -> tuple[str, list]:
    """`_finish_at_once`'s statement and its parameters (tasks/tests/test_owner_plan.py
    EXPLAINs the same)."""
    copy, history = copy_changed_sql(
        ExecutionTask,
        connection,
        reason=f"finished: {outcome}",
        user=actor.user,
        history_api_key_id=actor.api_key.pk if actor.api_key else None,
    )
    by_key = actor.api_key is not None
    statement = _finish_sql(connection, by_key=by_key, copy=copy, writes=tuple(finish_writes))
    now = timezone.now()
    params = [outcome, now, True, now, cost_micros, tokens, error or "", task_id]
    return statement, [*params, *([actor.api_key.pk] if by_key else []), *history]


_FINISHES: dict[tuple[bool, str, tuple[str, ...]], str] = {}


def _finish_sql(connection, *, by_key: bool, copy: str, writes: tuple[str, ...]) -> str:
    key = (by_key, copy, writes)
    if key not in _FINISHES:
        meta = ExecutionTask._meta
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in meta.concrete_fields)
        owner = " AND submitted_by_id = %s" if by_key else ""
        parts = "".join(f", finish_write_{i} AS ({finish_writes[name].sql()})" for i, name in enumerate(writes))
        # `_finish`'s fields (FINISH_FIELDS); duration_ms as duration_ms() computes it:
        # whole milliseconds, rounded down (PostgreSQL's EXTRACT(EPOCH …) is exact numeric).
        table = qn(meta.db_table)
        _FINISHES[key] = (
            f"WITH {FINISHED_ROW} AS (UPDATE {table} SET status = %s, finished_at = %s, rollup_pending = %s, "
            "duration_ms = FLOOR(EXTRACT(EPOCH FROM (%s::timestamptz - started_at)) * 1000)::bigint, "
            f"cost_micros = %s, tokens = %s, error = %s WHERE id = %s AND "
            + only_by_id(f"status = '{TaskStatus.RUNNING.value}' AND started_at IS NOT NULL{owner}")
            + f" RETURNING *), copied AS ({copy}{FINISHED_ROW}){parts} "
            f"SELECT {columns} FROM {FINISHED_ROW}"
        )
    return _FINISHES[key]


def _finish(task: ExecutionTask, *, outcome, cost_micros, tokens, error, now: datetime) -> None:
    task.status = outcome
    task.finished_at = now
    task.rollup_pending = True  # the worker adds it to the metrics rollups (tasks.rollups.drain_pending)
    task.duration_ms = duration_ms(task.started_at, now)
    task.cost_micros = cost_micros
    task.tokens = tokens
    task.error = error or ""


def duration_ms(started_at: datetime, finished_at: datetime) -> int:
    delta = finished_at - started_at
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _announce_finished(task: ExecutionTask) -> None:
    task_finished.send(sender=ExecutionTask, task=task)


CANCELLABLE = (TaskStatus.REGISTERED, TaskStatus.HELD, TaskStatus.RUNNING)


@transaction.atomic
def task_cancel(*, task_id: int, actor: Actor, reason: str = "") -> ExecutionTask:
    """registered | held | running → cancelled. Cancelling twice is a harmless retry."""
    task = _locked(task_id, actor=actor)
    if task.status == TaskStatus.CANCELLED:
        return task
    if task.status not in CANCELLABLE:
        raise InvalidTransition(f"cannot cancel a task that is {task.status}")
    task.status = TaskStatus.CANCELLED
    if task.started_at and not task.finished_at:
        task.finished_at = timezone.now()
    _save_with_history(task, actor=actor, reason=f"cancelled{': ' + reason if reason else ''}")
    return task


@transaction.atomic
def task_gate_update(*, task_id: int, decision: GateDecision, actor: Actor, reason: str) -> ExecutionTask | None:
    """Release or deny a held task after its case is decided. Only a task that is
    still held changes (compare-and-set under a row lock), so a decision is
    applied exactly once; returns None when the task was no longer held."""
    task = _locked(task_id)
    if task.status != TaskStatus.HELD:
        return None
    _apply_decision(task, decision)
    _save_with_history(task, actor=actor, reason=reason)
    return task


@transaction.atomic
def task_gate_withdraw(*, task_id: int, decision: GateDecision, actor: Actor, reason: str) -> ExecutionTask | None:
    """Deny a task the gate allowed but that has not started, because what allowed
    it was withdrawn (a revoked model version). Only a task still `registered`
    changes (compare-and-set under a row lock); returns None otherwise. A running
    task is told to stop by its caller instead."""
    if decision.decision != "deny":
        raise ValueError("only a denial withdraws an allowed task")
    task = _locked(task_id)
    if task.status != TaskStatus.REGISTERED:
        return None
    _apply_decision(task, decision)
    _save_with_history(task, actor=actor, reason=reason)
    return task


ABANDONED_ERROR = "abandoned"


def fail_abandoned_tasks(*, now: datetime | None = None, timeout_seconds: int | None = None) -> int:
    """Mark tasks `running` for longer than the timeout as failed with error
    "abandoned", so they skew neither metrics nor billing. Safe to run twice:
    each task is re-checked under its row lock. Returns how many it failed."""
    now = now or timezone.now()
    timeout = timeout_seconds if timeout_seconds is not None else settings.TASK_RUNNING_TIMEOUT_SECONDS
    cutoff = now - timedelta(seconds=timeout)
    candidates = list(
        ExecutionTask.objects.filter(status=TaskStatus.RUNNING, started_at__lt=cutoff).values_list("pk", flat=True)
    )
    failed = 0
    for task_id in candidates:
        with transaction.atomic():
            task = _locked(task_id)
            if task.status != TaskStatus.RUNNING or task.started_at >= cutoff:
                continue
            _finish(
                task,
                outcome=TaskStatus.FAILED,
                cost_micros=task.cost_micros,
                tokens=task.tokens,
                error=ABANDONED_ERROR,
                now=now,
            )
            _save_with_history(
                task, actor=Actor.system(), reason=f"abandoned: still running after {timeout} s", fields=FINISH_FIELDS
            )
            _announce_finished(task)
            failed += 1
    if failed:
        logger.info("Marked %d abandoned task(s) as failed", failed)
    return failed


class ApiKeyError(Exception):
    pass


@transaction.atomic
def api_key_create(
    *, name: str, owner, scopes: list[str], expires_at: datetime | None = None, by=None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown this once only."""
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; allowed: {', '.join(ApiKey.Scope.values)}")
    if not scopes:
        raise ApiKeyError("a key needs at least one scope")
    if ApiKey.objects.filter(name=name).exists():
        raise ApiKeyError(f"an API key named {name!r} already exists")
    secret = generate_secret()
    api_key = ApiKey(
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=ApiKey.hash_secret(secret),
        owner=owner,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    api_key._history_user = by or owner
    api_key._change_reason = "created"
    api_key.save()
    audit_append(
        kind="api_key.created",
        subject=f"api_key:{api_key.pk}",
        actor=actor_name(user=by or owner),
        data={
            "name": name,
            "owner": owner.get_username(),
            "scopes": api_key.scopes,
            "prefix": api_key.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return api_key, secret


@transaction.atomic
def api_key_revoke(*, api_key_id: int, by=None, reason: str = "") -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key._history_user = by
        api_key._change_reason = f"revoked{': ' + reason if reason else ''}"
        api_key.save()
        audit_append(
            kind="api_key.revoked",
            subject=f"api_key:{api_key.pk}",
            actor=actor_name(user=by),
            data={"name": api_key.name, "reason": reason},
        )
    return api_key


@transaction.atomic
def api_key_expiry_set(*, api_key_id: int, expires_at: datetime | None, by, reason: str) -> ApiKey:
    """Change when a key expires (None: never). Moving it into the future re-activates
    an expired key, so it is a decision like creating one: the key's history (the
    user, the reason) and an audit-chain entry (`api_key.expiry_changed`, with
    before, after and whether it re-activated the key). A revoked key stays revoked."""
    reason = (reason or "").strip()
    if not reason:
        raise ApiKeyError("changing a key's expiry needs a reason")
    api_key = ApiKey.objects.select_for_update().get(pk=api_key_id)
    if api_key.revoked_at is not None:
        raise ApiKeyError(f"key {api_key.name!r} is revoked; a revoked key is not brought back (create a new one)")
    if api_key.expires_at == expires_at:
        raise ApiKeyError("nothing changed: the key already expires then")
    now = timezone.now()
    was_active = api_key.is_active(now)
    before = api_key.expires_at
    api_key.expires_at = expires_at
    reactivated = not was_active and api_key.is_active(now)
    api_key._history_user = by
    api_key._change_reason = f"expiry {'extended, key active again' if reactivated else 'changed'}: {reason}"
    api_key.save()
    audit_append(
        kind="api_key.expiry_changed",
        subject=f"api_key:{api_key.pk}",
        actor=actor_name(user=by),
        data={
            "name": api_key.name,
            "before": before.isoformat() if before else None,
            "after": expires_at.isoformat() if expires_at else None,
            "reactivated": reactivated,
            "reason": reason,
        },
    )
    return api_key
