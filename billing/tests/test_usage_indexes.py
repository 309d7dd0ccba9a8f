"""Every billed finish inserts a usage record: the tables written on the AI side's hot
paths carry no index that another index on the same table already gives (the same
leading columns, operator classes and predicate, and not enforcing uniqueness)."""

import pytest
from django.db import connection

from billing.models import UsageRecord
from tasks.models import ExecutionTask, TaskMetricsRollup

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="PostgreSQL's index catalog")]

HOT_TABLES = [
    UsageRecord._meta.db_table,
    ExecutionTask._meta.db_table,
    ExecutionTask.history.model._meta.db_table,
    TaskMetricsRollup._meta.db_table,
]

# Pairs (a, b): a is not unique, and its columns and operator classes are the first ones
# of b's (or equal to them), with the same predicate: b serves every lookup a serves.
REDUNDANT = """
WITH ix AS (
    SELECT i.indrelid::regclass::text AS tbl, c.relname AS name, i.indisunique AS uniq,
           string_to_array(i.indkey::text, ' ')::int[] AS cols,
           string_to_array(i.indclass::text, ' ')::oid[] AS classes,
           pg_get_expr(i.indpred, i.indrelid) AS pred, i.indexprs IS NOT NULL AS has_exprs, am.amname AS am
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am am ON am.oid = c.relam
     WHERE i.indrelid::regclass::text = ANY(%s)
)
SELECT a.tbl, a.name, b.name
  FROM ix a JOIN ix b ON a.tbl = b.tbl AND a.name <> b.name
 WHERE a.am = 'btree' AND b.am = 'btree' AND NOT a.uniq AND NOT a.has_exprs AND NOT b.has_exprs
   AND a.pred IS NOT DISTINCT FROM b.pred
   AND a.cols = b.cols[1:cardinality(a.cols)] AND a.classes = b.classes[1:cardinality(a.classes)]
   AND (cardinality(a.cols) < cardinality(b.cols) OR b.uniq OR a.name < b.name)
 ORDER BY 1, 2
"""


def redundant_indexes(tables):
    with connection.cursor() as cursor:
        cursor.execute(REDUNDANT, [tables])
        return cursor.fetchall()


def test_hot_tables_have_no_redundant_index():
    assert redundant_indexes(HOT_TABLES) == []


def test_the_check_finds_a_redundant_index():
    """The query above is not vacuous: the index Django gave the usage record's customer
    key before billing.0004 is found beside usage_customer_time."""
    table = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE INDEX "usage_customer_again" ON "{table}" ("customer_id")')
        cursor.execute(f'CREATE INDEX "usage_invoice_line_again" ON "{table}" ("invoice_line_id")')
    assert redundant_indexes([table]) == [
        (table, "usage_customer_again", "usage_customer_time"),
        (table, "usage_invoice_line", "usage_invoice_line_again"),  # equal: one of the two is reported
    ]
