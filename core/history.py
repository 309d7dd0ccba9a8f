"""History rows for django-simple-history models, copied by the database.

`save_with_history(instance, reason=…)` saves the instance and adds its history
row with one INSERT … SELECT from the row just written, so the history row is the
row exactly as saved; on PostgreSQL a new row and its history row go in with one
statement. django-simple-history's own save signal builds the history row in
Python (and a fresh manager class on every save): about a millisecond a row,
which was most of what registering a task or applying a Stripe event cost on top
of their real work (docs/benchmarks.md). The history models stay
simple-history's (admin, queries, `excluded_fields`), and saves made anywhere
else still get their rows from its signal.

A new row is inserted without pre_save/post_save signals (auto_now fields are
still filled): use this only for models whose signal receivers, other than
simple-history's, do not matter for these saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.sql import insert_sql, insert_values, mark_saved

_REQUEST_USER = object()


@dataclass(frozen=True)
class _Statements:
    extra: list[Field]  # the history row's own columns, in parameter order
    insert: str  # a new row, returning its primary key
    copy: str  # the history row from the saved row; parameters: the extra columns, then the primary key
    insert_and_copy: str | None  # both at once (PostgreSQL), returning the primary key
    copy_many: str  # history rows of many saved rows (PostgreSQL): the extra columns, then an array of keys
    copy_from: str  # `INSERT INTO history (…) SELECT … FROM ` the saved row under another name (a CTE's)


_STATEMENTS: dict[tuple[type[Model], str], _Statements] = {}


def _statements(model: type[Model], connection) -> _Statements:
    key = (model, connection.vendor)
    if key not in _STATEMENTS:
        meta = model._meta
        history = getattr(model, meta.simple_history_manager_attribute).model
        qn = connection.ops.quote_name
        table, history_table, pk = qn(meta.db_table), qn(history._meta.db_table), qn(meta.pk.column)
        own = {f.attname for f in meta.concrete_fields}
        history_fields = [f for f in history._meta.concrete_fields if not f.primary_key]
        copied = [qn(f.column) for f in history_fields if f.attname in own]
        extra = [f for f in history_fields if f.attname not in own]
        columns = ", ".join([*copied, *(qn(f.column) for f in extra)])
        select = ", ".join([*copied, *["%s"] * len(extra)])
        returning = connection.features.can_return_columns_from_insert
        _STATEMENTS[key] = _Statements(
            extra=extra,
            insert=insert_sql(model, connection, f" RETURNING {pk}" if returning else ""),
            copy=f"INSERT INTO {history_table} ({columns}) SELECT {select} FROM {table} WHERE {pk} = %s",
            copy_many=f"INSERT INTO {history_table} ({columns}) SELECT {select} FROM {table} WHERE {pk} = ANY(%s)",
            copy_from=f"INSERT INTO {history_table} ({columns}) SELECT {select} FROM ",
            insert_and_copy=(
                f"WITH new_row AS ({insert_sql(model, connection, ' RETURNING *')}) "
                f"INSERT INTO {history_table} ({columns}) SELECT {select} FROM new_row RETURNING {pk}"
                if connection.vendor == "postgresql"
                else None
            ),
        )
    return _STATEMENTS[key]


def inserts_in_one_statement(model: type[Model]) -> bool:
    """Whether a new row and its history row go in with one statement (atomic by
    itself, so a caller outside a transaction needs none): PostgreSQL."""
    return _statements(model, connections[router.db_for_write(model)]).insert_and_copy is not None


def copy_history_sql(
    model: type[Model], connection, *, reason: str, user: Any, source: str | None = None, **extra: Any
) -> tuple[str, list]:
    """One statement adding the history rows ("+", created) of many rows just inserted,
    copied by the database (PostgreSQL), and its parameters but the last: append the
    list of primary keys. With `source` (a CTE's name, `WITH new_rows AS (INSERT …
    RETURNING *)`), the rows are copied from it instead and the parameters are complete."""
    sql = _statements(model, connection)
    values = {
        "history_date": timezone.now(),
        "history_change_reason": reason,
        "history_type": "+",
        "history_user_id": user.pk if user is not None else None,
        **extra,
    }
    statement = sql.copy_many if source is None else sql.copy_from + source
    return statement, [f.get_db_prep_save(values.get(f.attname), connection) for f in sql.extra]


def _request_user():
    """Whom simple-history would record: the signed-in user of the current request, if any."""
    request = getattr(HistoricalRecords.context, "request", None)
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def save_with_history(instance: Model, *, reason: str = "", user: Any = _REQUEST_USER, **extra: Any) -> None:
    """Save `instance` (insert or update) and add its history row.

    `user` defaults, as in simple-history, to the signed-in user of the current
    request; pass it (or None) to say who acted. `extra` sets other columns of the
    history model by attname (tasks' `history_api_key_id`)."""
    model = type(instance)
    connection = connections[router.db_for_write(model, instance=instance)]
    sql = _statements(model, connection)
    if user is _REQUEST_USER:
        user = _request_user()
    adding = instance._state.adding
    values = {
        "history_date": timezone.now(),
        "history_change_reason": reason,
        "history_type": "+" if adding else "~",
        "history_user_id": user.pk if user is not None else None,
        **extra,
    }
    history = [f.get_db_prep_save(values.get(f.attname), connection) for f in sql.extra]
    with connection.cursor() as cursor:
        if adding:
            row = insert_values(instance, connection)
            if sql.insert_and_copy:
                cursor.execute(sql.insert_and_copy, [*row, *history])
                mark_saved(instance, cursor.fetchone()[0], connection)
            else:
                cursor.execute(sql.insert, row)
                returns = connection.features.can_return_columns_from_insert
                mark_saved(instance, cursor.fetchone()[0] if returns else cursor.lastrowid, connection)
                cursor.execute(sql.copy, [*history, instance.pk])
            return
        instance.skip_history_when_saving = True
        try:
            instance.save()
        finally:
            del instance.skip_history_when_saving
        cursor.execute(sql.copy, [*history, instance.pk])


_UPDATES: dict[tuple[type[Model], str, tuple[str, ...]], str] = {}


def _update_and_copy_sql(
    model: type[Model], connection, fields: tuple[str, ...], conditions: tuple[str, ...] = ()
) -> str:
    """`WITH changed AS (UPDATE … SET fields WHERE pk [AND conditions] RETURNING *)
    INSERT INTO history SELECT … FROM changed`: parameters, the fields' values, the
    primary key, the conditions' values, then the history row's own columns."""
    key = (model, connection.vendor, fields, conditions)
    if key not in _UPDATES:
        meta = model._meta
        qn = connection.ops.quote_name
        assignments = ", ".join(f"{qn(meta.get_field(name).column)} = %s" for name in fields)
        pk = qn(meta.pk.column)
        where = "".join(f" AND {qn(meta.get_field(name).column)} IS NOT DISTINCT FROM %s" for name in conditions)
        _UPDATES[key] = (
            f"WITH changed AS (UPDATE {qn(meta.db_table)} SET {assignments} WHERE {pk} = %s{where} RETURNING *) "
            f"{_statements(model, connection).copy_from}changed RETURNING {pk}"
        )
    return _UPDATES[key]


def updates_in_one_statement(model: type[Model]) -> bool:
    """Whether update_with_history writes a row and its history row with one statement
    (atomic by itself; the only database where `only_if` is taken): PostgreSQL."""
    return inserts_in_one_statement(model)


def update_with_history(
    instance: Model,
    fields: tuple[str, ...],
    *,
    reason: str = "",
    user: Any = _REQUEST_USER,
    only_if: dict[str, Any] | None = None,
    **extra: Any,
) -> bool:
    """Write `fields` of a saved instance and add its history row ("~"), as
    save_with_history does for a change, for a row the caller holds locked (the
    other columns are then what the instance holds).

    On PostgreSQL one statement: the UPDATE … RETURNING and the history row copied
    from what it returns, as a new row and its history row go in (the statement
    building and one round trip of `save()` plus the copy, on the `start` path of a
    task: docs/benchmarks.md). Elsewhere `save(update_fields=…)`, then the copy.
    Without save signals, like save_with_history's insert: only for models whose
    receivers, other than simple-history's, do not matter for these saves.

    `only_if` (PostgreSQL only: updates_in_one_statement): field values (None: NULL)
    the row must still have, a compare-and-set for a row the caller did not lock. When the row no
    longer matches, nothing is written and the answer is False; otherwise True."""
    model = type(instance)
    connection = connections[router.db_for_write(model, instance=instance)]
    if only_if and connection.vendor != "postgresql":
        raise ValueError("update_with_history's only_if needs PostgreSQL (updates_in_one_statement)")
    if connection.vendor != "postgresql":
        instance.skip_history_when_saving = True
        try:
            instance.save(update_fields=fields)
        finally:
            del instance.skip_history_when_saving
        sql = _statements(model, connection)
        history = _history_values(sql, connection, reason=reason, user=user, history_type="~", extra=extra)
        with connection.cursor() as cursor:
            cursor.execute(sql.copy, [*history, instance.pk])
        return True
    sql = _statements(model, connection)
    history = _history_values(sql, connection, reason=reason, user=user, history_type="~", extra=extra)
    meta = model._meta
    values = [meta.get_field(name) for name in fields]
    params = [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in values]
    conditions = tuple(only_if or ())
    expected = [meta.get_field(name).get_db_prep_save(only_if[name], connection) for name in conditions]
    statement = _update_and_copy_sql(model, connection, tuple(fields), conditions)
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, instance.pk, *expected, *history])
        if cursor.fetchone() is None:
            if only_if:
                return False
            raise model.DoesNotExist(f"No {meta.object_name} with pk {instance.pk!r} to update.")
    return True


def copy_changed_sql(model: type[Model], connection, *, reason: str = "", user: Any = _REQUEST_USER, **extra: Any):
    """For a caller's own `WITH changed AS (UPDATE … RETURNING *)` (PostgreSQL; one
    whose SET or WHERE the database must compute): `INSERT INTO history (…) SELECT …
    FROM ` (append `changed`) and its parameters, the history row's own columns,
    which follow the UPDATE's in the statement: a "~" row copied from each changed
    row, as update_with_history writes."""
    sql = _statements(model, connection)
    return sql.copy_from, _history_values(sql, connection, reason=reason, user=user, history_type="~", extra=extra)


def _history_values(sql: _Statements, connection, *, reason: str, user: Any, history_type: str, extra: dict) -> list:
    if user is _REQUEST_USER:
        user = _request_user()
    values = {
        "history_date": timezone.now(),
        "history_change_reason": reason,
        "history_type": history_type,
        "history_user_id": user.pk if user is not None else None,
        **extra,
    }
    return [f.get_db_prep_save(values.get(f.attname), connection) for f in sql.extra]
