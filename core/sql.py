"""Hand-built INSERTs for the few hot paths where building the statement with the
ORM costs more than running it (task registration with its history row, Stripe
webhook intake). Built from the model's fields, once per model and database
vendor, so they follow the migrations."""

from __future__ import annotations

from django.db.models import Field, Model

_SQL: dict[tuple[type[Model], str, str], str] = {}


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
