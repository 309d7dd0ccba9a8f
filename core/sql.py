"""Statements built once for the few hot paths where building a statement with the ORM
costs more than running it: hand-built INSERTs (task registration with its history row,
Stripe webhook intake), from the model's fields, once per model and database vendor, so
they follow the migrations; and reads every logged-in request makes (its session row, its
user with its role groups), the ORM's own SQL kept for the next requests (`select_once`)."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Field, Model, QuerySet

_SQL: dict[tuple[type[Model], str, str], str] = {}
_SELECTS: dict[tuple[str, str], str] = {}


def select_once(name: str, connection, build: Callable[[], QuerySet]) -> str:
    """The SQL the ORM makes of the queryset `build()`, made once per `name` and database
    vendor: for a read whose statement differs between requests only by its one parameter
    (the ORM spends ~0.5 ms building a join that runs in ~0.1). Run it with
    `Model._default_manager.raw(sql, [value])`, which reads its columns as the queryset
    would (annotations as attributes). `build()` must filter on exactly one value."""
    key = (name, connection.vendor)
    sql = _SELECTS.get(key)
    if sql is None:
        sql, params = build().query.get_compiler(connection=connection).as_sql()
        if len(params) != 1:
            raise ValueError(f"select_once({name!r}): the query takes {len(params)} parameters, not one")
        _SELECTS[key] = sql
    return sql


def insert_fields(model: type[Model]) -> list[Field]:
    """The columns a new row is written with: all but an automatic primary key."""
    meta = model._meta
    return [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]


def insert_sql(model: type[Model], connection, suffix: str = "") -> str:
    """`INSERT INTO table (insert_fields…) VALUES (%s, …)` followed by `suffix`
    (ON CONFLICT, RETURNING…)."""
    key = (model, connection.vendor, suffix)
    if key not in _SQL:
        qn = connection.ops.quote_name
        fields = insert_fields(model)
        _SQL[key] = (
            f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}){suffix}"
        )
    return _SQL[key]


def insert_values(instance: Model, connection) -> list:
    """The parameters for insert_sql: each field's value as the ORM would save it on
    an insert (defaults applied, auto_now filled)."""
    return [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in insert_fields(type(instance))]


def mark_saved(instance: Model, pk, connection) -> None:
    """An instance our own INSERT wrote: its primary key set, and saved on `connection`'s
    database as far as the ORM knows (as `save()` would leave it)."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
