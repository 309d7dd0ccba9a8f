"""The execution_tasks table: adopting a legacy database, the ai_model migration,
and the schema check that finds a live database missing a column.

These run `manage.py` against databases of their own (a temporary SQLite file,
or a temporary PostgreSQL database), the way an operator would.
"""

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from fsar.testing import admin_connection, live_database_url

ROOT = Path(__file__).resolve().parents[2]
LEGACY = Path(__file__).parent / "fixtures" / "legacy"


def manage(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


# --- migrating a populated table forward and back ---


@contextmanager
def temporary_database(tmp_path: Path) -> Iterator[tuple[str, Callable[[str], list]]]:
    """A database of its own, of the suite's kind (a SQLite file, or a PostgreSQL database
    on the suite's server, dropped after): its URL for `manage`, and a function running one
    script there (no parameters, autocommit) and returning the rows of its last statement."""
    if connection.vendor != "postgresql":
        path = tmp_path / "own.sqlite3"

        def run_sqlite(sql: str) -> list:
            with sqlite3.connect(path) as db:
                return db.execute(sql).fetchall()

        yield f"sqlite:///{path}", run_sqlite
        return
    name = f"fsar_own_{uuid.uuid4().hex[:8]}"
    with admin_connection(dbname="postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def run_postgres(sql: str) -> list:
        with admin_connection(dbname=name) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []

    try:
        yield f"{live_database_url().rsplit('/', 1)[0]}/{name}", run_postgres
    finally:
        with admin_connection(dbname="postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_ai_model_migration_keeps_rows_forward_and_back_and_reads_null(tmp_path):
    """tasks.0002 forward, back and forward again on a table holding rows, in a database of
    the suite's kind of its own: only tasks' own migrations move (the test database's
    whole project was unapplied and applied again for this, 3-4 minutes on a slow host).
    Rows surviving every later migration too is the legacy adoption tests' (below)."""
    with temporary_database(tmp_path) as (url, run):
        manage(url, "migrate", "tasks", "0001_initial", "--noinput")
        run(
            "INSERT INTO execution_tasks (external_id, task_type, status, payload, created_at, error) "
            "VALUES ('old-1', 'implement_idea', 'succeeded', '{}', CURRENT_TIMESTAMP, ''), "
            "('old-2', 'self_improvement', 'failed', '{}', CURRENT_TIMESTAMP, 'x')"
        )
        manage(url, "migrate", "tasks", "0002_executiontask_ai_model", "--noinput")
        assert run("SELECT external_id, ai_model FROM execution_tasks ORDER BY external_id") == [
            ("old-1", None),
            ("old-2", None),
        ]
        manage(url, "migrate", "tasks", "0001_initial", "--noinput")
        assert run("SELECT external_id FROM execution_tasks ORDER BY external_id") == [("old-1",), ("old-2",)]
        assert "ai_model" not in {row[0] for row in run(_COLUMNS[url.split(":")[0]])}
        manage(url, "migrate", "tasks", "0002_executiontask_ai_model", "--noinput")
        assert run("SELECT count(*) FROM execution_tasks WHERE ai_model IS NULL") == [(2,)]


_COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('execution_tasks')",
    "postgres": "SELECT column_name FROM information_schema.columns WHERE table_name = 'execution_tasks'",
}


def test_the_ai_model_migration_adds_a_nullable_column_without_a_default():
    sql = manage("sqlite:///:memory:", "sqlmigrate", "tasks", "0002").stdout
    assert 'ALTER TABLE "execution_tasks" ADD COLUMN "ai_model" text NULL;' in sql
    assert "DEFAULT" not in sql.upper()


def test_migration_0001_creates_only_the_legacy_table():
    sql = manage("sqlite:///:memory:", "sqlmigrate", "tasks", "0001").stdout
    statements = [line for line in sql.splitlines() if line.startswith(("CREATE", "ALTER"))]
    assert len(statements) == 1 and statements[0].startswith('CREATE TABLE "execution_tasks"')


# --- adopting a legacy database with --fake-initial ---


def test_a_legacy_sqlite_database_is_adopted_with_fake_initial(tmp_path):
    path = tmp_path / "legacy.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript((LEGACY / "execution_tasks.sqlite.sql").read_text())
    url = f"sqlite:///{path}"
    result = manage(url, "migrate", "--fake-initial", "--noinput")
    assert "tasks.0001_initial... FAKED" in result.stdout
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT external_id, ai_model, duration_ms FROM execution_tasks ORDER BY id").fetchall()
    assert rows == [("legacy-0001", None, 250000), ("legacy-0002", None, 1899000), ("legacy-0003", None, 720000)]
    assert manage(url, "checkschema").returncode == 0


@pytest.mark.postgres(reason="adopting a legacy PostgreSQL database")
def test_a_legacy_postgresql_database_is_adopted_with_fake_initial(tmp_path):
    with temporary_database(tmp_path) as (url, run):
        run((LEGACY / "execution_tasks.postgresql.sql").read_text())
        result = manage(url, "migrate", "--fake-initial", "--noinput")
        assert "tasks.0001_initial... FAKED" in result.stdout
        rows = run("SELECT external_id, ai_model FROM execution_tasks ORDER BY id")
        assert rows == [("legacy-0001", None), ("legacy-0002", None), ("legacy-0003", None)]
        assert manage(url, "checkschema").returncode == 0


# --- the schema check: the seed report's bug ---


def test_checkschema_finds_the_missing_ai_model_when_its_migration_was_faked(tmp_path):
    url = f"sqlite:///{tmp_path / 'faked.sqlite3'}"
    manage(url, "migrate", "tasks", "0001", "--noinput")
    manage(url, "migrate", "tasks", "0002", "--fake", "--noinput")
    result = manage(url, "checkschema", check=False)
    assert result.returncode != 0
    assert "missing column execution_tasks.ai_model" in result.stdout
    assert "missing table tasks_apikey" in result.stdout


def test_checkschema_passes_on_a_fully_migrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'full.sqlite3'}"
    manage(url, "migrate", "--noinput")
    result = manage(url, "checkschema")
    assert "Schema OK" in result.stdout


def test_checkschema_reports_a_dropped_index(tmp_path):
    path = tmp_path / "noindex.sqlite3"
    url = f"sqlite:///{path}"
    manage(url, "migrate", "--noinput")
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX tasks_status_id")
    result = manage(url, "checkschema", check=False)
    assert result.returncode != 0
    assert "missing index execution_tasks.tasks_status_id" in result.stdout


def _migration(name: str):
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    return loader, loader.get_migration("tasks", name)


INDEX_MIGRATIONS = ["0003_fsar_columns_history_keys", "0004_metrics_covering_index", "0007_model_finished_index"]


@pytest.mark.parametrize("name", INDEX_MIGRATIONS)
def test_indexes_on_the_task_table_are_built_outside_a_transaction(name):
    """Adopted legacy tables are large: every index the migrations add to them is built
    by a non-atomic RunPython (CONCURRENTLY on PostgreSQL), never a plain AddIndex."""
    from django.db import migrations as ops

    _, migration = _migration(name)
    assert migration.atomic is False
    assert not [op for op in migration.operations if isinstance(op, ops.AddIndex)]
    built = [op for op in migration.operations if isinstance(op, ops.SeparateDatabaseAndState)]
    assert built and all(
        isinstance(db_op, ops.RunPython) and not db_op.atomic for op in built for db_op in op.database_operations
    )


@pytest.mark.django_db
@pytest.mark.postgres(reason="CREATE INDEX CONCURRENTLY")
def test_migration_0003_builds_its_seven_indexes_concurrently_on_postgresql():
    loader, migration = _migration("0003_fsar_columns_history_keys")
    state = loader.project_state(("tasks", "0003_fsar_columns_history_keys"))
    (step,) = [op for op in migration.operations if hasattr(op, "database_operations")]
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        step.database_operations[0].code(state.apps, editor)
    statements = [sql for sql in editor.collected_sql if "INDEX" in sql]
    assert len(statements) == 7
    assert all(sql.startswith("CREATE INDEX CONCURRENTLY") for sql in statements), statements
    names = {'"tasks_status_id"', '"tasks_type_id"', '"tasks_model_id"', '"tasks_customer_id"'}
    assert all(any(name in sql for sql in statements) for name in names)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_backfilled_count_migration_fills_the_rollup_rows_from_the_raw_rows():
    from datetime import UTC, datetime

    from tasks.models import TaskMetricsRollup

    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    day = datetime(2026, 11, 2, tzinfo=UTC)
    try:
        executor.migrate([("tasks", "0009_rollup_pending")])
        apps = executor.loader.project_state([("tasks", "0009_rollup_pending")]).apps
        Task, Rollup = apps.get_model("tasks", "ExecutionTask"), apps.get_model("tasks", "TaskMetricsRollup")
        for n, (hour, minute, model, source, pending) in enumerate([
            (10, 15, "gpt-5.1", "backfill", False), (10, 40, "gpt-5.1", "backfill", False),
            (10, 20, "gpt-5.1", "api", False),  # seen run: not marked
            (10, 50, "gpt-5.1", "backfill", True),  # still pending for the drain: not in the rollups yet
            (14, 5, None, "backfill", False),
        ]):  # fmt: skip
            at = day.replace(hour=hour, minute=minute)
            Task.objects.create(external_id=f"b-{n}", task_type="implement_idea", status="succeeded", payload={},
                                created_at=at, finished_at=at, ai_model=model, source=source,
                                rollup_pending=pending)  # fmt: skip
        for period, start, model, count in [
            ("hour", day.replace(hour=10), "gpt-5.1", 3), ("6h", day.replace(hour=6), "gpt-5.1", 3),
            ("day", day, "gpt-5.1", 3), ("hour", day.replace(hour=14), None, 1), ("6h", day.replace(hour=12), None, 1),
            ("day", day, None, 1),
        ]:  # fmt: skip
            Rollup.objects.create(period=period, start=start, task_type="implement_idea", has_model=model is not None,
                                  model=model or "", count=count, histogram=[])  # fmt: skip
        executor = MigrationExecutor(connection)
        executor.migrate([("tasks", "0010_rollup_backfilled")])
        got = sorted((r.period, r.start.hour, r.ai_model or "-", r.backfilled) for r in TaskMetricsRollup.objects.all())
        assert got == [
            ("6h", 6, "gpt-5.1", 2), ("6h", 12, "-", 1), ("day", 0, "-", 1), ("day", 0, "gpt-5.1", 2),
            ("hour", 10, "gpt-5.1", 2), ("hour", 14, "-", 1),
        ]  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_histogram_migration_converts_stored_histograms_both_ways():
    """Migration 0017: jsonb histograms become bigint[] on PostgreSQL and back, values
    kept (an empty one, a negative first bucket, a count beyond 32 bits), and the fold's
    sum function comes and goes with them; on SQLite the JSON text stays as it is."""
    from datetime import UTC, datetime

    from tasks.models import TaskMetricsRollup

    stored = {"implement_idea": [3, 1, 0, 2], "idea_implementation": [], "self_improvement": [-4, 7, 5_000_000_000]}
    day = datetime(2026, 11, 2, tzinfo=UTC)

    def column_type() -> str | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'tasks_metrics_rollup'::regclass AND attname = 'histogram'"
            )
            return cursor.fetchone()[0]

    def has_function() -> bool | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = 'tasks_histogram_add'")
            return cursor.fetchone()[0] == 1

    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("tasks", "0016_task_key_without_db_constraint")])
        apps = executor.loader.project_state([("tasks", "0016_task_key_without_db_constraint")]).apps
        Rollup = apps.get_model("tasks", "TaskMetricsRollup")
        for task_type, histogram in stored.items():
            Rollup.objects.create(period="day", start=day, task_type=task_type, has_model=False, model="",
                                  count=1, histogram=histogram)  # fmt: skip
        assert column_type() in (None, "jsonb") and has_function() in (None, False)
        executor = MigrationExecutor(connection)
        executor.migrate([("tasks", "0017_rollup_histogram_bigint_array")])
        assert column_type() in (None, "bigint[]") and has_function() in (None, True)
        assert {r.task_type: r.histogram for r in TaskMetricsRollup.objects.all()} == stored
        executor = MigrationExecutor(connection)
        executor.migrate([("tasks", "0016_task_key_without_db_constraint")])
        assert column_type() in (None, "jsonb") and has_function() in (None, False)
        apps = executor.loader.project_state([("tasks", "0016_task_key_without_db_constraint")]).apps
        back = apps.get_model("tasks", "TaskMetricsRollup").objects.all()
        assert {r.task_type: r.histogram for r in back} == stored
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
