"""Compare the live database with the models: the seed report's bug was a live
database missing a column (`ai_model`) that the code expected."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import connections
from django.db.models import Model


@dataclass(frozen=True)
class SchemaProblem:
    kind: str  # "table", "column" or "index"
    table: str
    name: str

    def __str__(self) -> str:
        if self.kind == "table":
            return f"missing table {self.table}"
        return f"missing {self.kind} {self.table}.{self.name}"


def _model_tables() -> list[tuple[str, type[Model]]]:
    seen: dict[str, type[Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or meta.swapped:
            continue
        seen.setdefault(meta.db_table, model)
    return sorted(seen.items())


def _expected_indexes(model: type[Model]) -> list[tuple[str, list[str], bool]]:
    """(name, columns, unique) for every index the model declares."""
    meta = model._meta
    expected = []
    for index in meta.indexes:
        columns = [meta.get_field(f.lstrip("-")).column for f in index.fields]
        expected.append((index.name, columns, False))
    for field in meta.local_concrete_fields:
        if field.primary_key:
            continue
        if field.unique:
            expected.append((f"{field.column} (unique)", [field.column], True))
        elif field.db_index:
            expected.append((f"{field.column} (index)", [field.column], False))
    return expected


def check_schema(using: str = "default") -> list[SchemaProblem]:
    """Every table, column and index the models expect that the database lacks."""
    connection = connections[using]
    problems: list[SchemaProblem] = []
    with connection.cursor() as cursor:
        existing_tables = {t.name for t in connection.introspection.get_table_list(cursor)}
        for table, model in _model_tables():
            if table not in existing_tables:
                problems.append(SchemaProblem("table", table, table))
                continue
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            for field in model._meta.local_concrete_fields:
                if field.column not in columns:
                    problems.append(SchemaProblem("column", table, field.column))
            constraints = connection.introspection.get_constraints(cursor, table)
            for name, wanted_columns, unique in _expected_indexes(model):
                if not all(col in columns for col in wanted_columns):
                    continue  # the missing column is already reported
                if name in constraints:
                    continue
                found = any(
                    info["columns"] == wanted_columns
                    and (info["unique"] or info["primary_key"] if unique else (info["index"] or info["unique"]))
                    for info in constraints.values()
                )
                if not found:
                    problems.append(SchemaProblem("index", table, name))
    return problems
