"""What billing does when a task finishes: rate its usage, in the transaction that
finishes it (tasks.signals.finish_writes, registered in BillingConfig.ready)."""

from billing.services import usage_rate, usage_rate_sql
from tasks.signals import FinishWrite

# On PostgreSQL one part of the statement that finishes the task; elsewhere (and on the
# locked path) one statement of its own (billing.services.usage_rate).
RATE_FINISHED_TASK = FinishWrite(run=lambda task: usage_rate(task=task), sql=usage_rate_sql)
