"""The execution gate as `tasks` sees it: a decision type and one call.

The gate itself is composed in `fsar/` (settings.TASK_GATE), so that `tasks`
never imports `reviews`. The gate fails closed: anything that goes wrong while
deciding becomes GateUnavailable, which the API answers with 503 and
Retry-After, never with `allow`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from tasks.models import ExecutionTask

logger = logging.getLogger(__name__)

Decision = Literal["allow", "hold", "deny"]


@dataclass(frozen=True)
class GateDecision:
    decision: Decision
    reason: str
    policy: str | None = None
    # The review case's id (an integer, as in every API answer that names a case).
    case: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class GateUnavailable(Exception):
    """The gate could not decide. Retry later; the task was not stored."""

    retry_after_seconds = 5


class GateNeedsTransaction(Exception):
    """A gate asked outside a transaction raises this when its decision would
    write (open or reopen a review case): the caller asks again inside one, so
    that the write and the task commit together or not at all. Most decisions
    write nothing, and a registration then needs no transaction of its own."""


def require_transaction() -> None:
    """For a gate about to write: raise GateNeedsTransaction unless inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise GateNeedsTransaction()


def _gate(setting: str) -> Callable[[ExecutionTask], GateDecision]:
    # import_string is a dict lookup once the module is imported; not caching it
    # lets tests swap the gate with override_settings.
    return import_string(getattr(settings, setting))


def ask_gate(task: ExecutionTask) -> GateDecision:
    """The gate's decision on a task being registered (settings.TASK_GATE)."""
    return _ask("TASK_GATE", task)


def recheck_gate(task: ExecutionTask, *, read: tuple | None = None) -> GateDecision:
    """The gate's answer now, for a task stored as allowed that is about to begin
    (settings.TASK_GATE_RECHECK): asked at `start`, inside its transaction, so
    that a pause, a revoked or lapsed approval, a revision, a rejection or a
    policy change since registration is seen at the moment of use.

    `read`: the values of the gate's ReadWithTask, read in the same statement as
    the task (the gate is then asked with them instead of reading them itself)."""
    return _ask("TASK_GATE_RECHECK", task, read)


@dataclass(frozen=True)
class ReadWithTask:
    """What a re-check gate reads on every start, for `tasks` to read in the same
    statement as the task itself (one round trip fewer): `sql(connection)` is a
    query of one row and no parameters (joined to the task's read as a LATERAL
    subquery: a row of NULLs where it has none), and the gate, the callable that
    has this as its `read_with_task`, is asked as `gate(task, read=<its values>)`."""

    sql: Callable[..., str]


def recheck_read_with_task() -> ReadWithTask | None:
    """The re-check gate's ReadWithTask, if it has one."""
    return getattr(_gate("TASK_GATE_RECHECK"), "read_with_task", None)


def _ask(setting: str, task: ExecutionTask, read: tuple | None = None) -> GateDecision:
    try:
        with gate_deadline():
            gate = _gate(setting)
            decision = gate(task) if read is None else gate(task, read=read)
    except GateUnavailable:
        raise
    except GateNeedsTransaction as exc:
        if not transaction.get_connection().in_atomic_block:
            raise
        raise GateUnavailable("the gate asked for a transaction inside one") from exc
    except Exception as exc:
        logger.exception("The execution gate failed while deciding on %s", task.external_id)
        raise GateUnavailable(str(exc)) from exc
    if not isinstance(decision, GateDecision) or decision.decision not in ("allow", "hold", "deny"):
        raise GateUnavailable(f"the gate returned no valid decision: {decision!r}")
    return decision


@contextmanager
def gate_deadline() -> Iterator[None]:
    """Bound every query the gate makes by settings.GATE_STATEMENT_TIMEOUT_MS
    (PostgreSQL's statement_timeout, lock waits included); past it the query
    fails, and so the gate fails closed (GateUnavailable: 503, nothing stored).

    Without a round trip of its own: each query goes out as one simple-protocol
    message `SET LOCAL statement_timeout = N; <query>` (its parameters bound
    client-side by the driver), which outside a transaction is an implicit
    transaction of its own, so the setting ends with the query; inside one, the
    message ends with `SET LOCAL statement_timeout TO DEFAULT`, so that the
    statements after the gate's (the task's insert, the rest of a caller's
    transaction) are not bound by it. No-op on SQLite, or with a timeout of 0."""
    connection = transaction.get_connection()
    timeout_ms = settings.GATE_STATEMENT_TIMEOUT_MS
    if connection.vendor != "postgresql" or timeout_ms <= 0:
        yield
        return
    with connection.execute_wrapper(_StatementTimeout(timeout_ms)):
        yield


class _StatementTimeout:
    def __init__(self, timeout_ms: int) -> None:
        self.prefix = f"SET LOCAL statement_timeout = {timeout_ms}; "

    # Savepoints pass as they are: a ROLLBACK TO SAVEPOINT runs in a transaction that
    # failed, where even a SET would be refused (and undoing the savepoint undoes its SET).
    TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")

    def __call__(self, execute, sql, params, many, context):
        if many or sql.startswith(self.TRANSACTION_CONTROL):  # executemany: the gate makes none
            return execute(sql, params, many, context)
        connection = context["connection"]
        if params is not None:
            if type(params) in (list, tuple) and all(type(value) is int for value in params):
                # Ids (start's read of the task with the gate's state): written out as the
                # driver would (a negative number after a space, never `--`), without the
                # client-side cursor compose_sql opens for each query.
                sql = sql % tuple(str(value) if value >= 0 else f" {value}" for value in params)
            else:
                sql = connection.ops.compose_sql(sql, params)
        suffix = "; SET LOCAL statement_timeout TO DEFAULT" if connection.in_atomic_block else ""
        result = execute(self.prefix + sql + suffix, None, many, context)
        context["cursor"].cursor.nextset()  # past the SET, onto the query's own result
        return result
