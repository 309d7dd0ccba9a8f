"""The RQ worker class `manage.py rqworker` runs (settings.RQ["WORKER_CLASS"]).

RQ's default worker forks a work horse for every job: the fork of a ~100 MB
process, the child's own PostgreSQL connection (a new backend, its catalogue
caches cold) and its exit cost far more CPU than our jobs do (a Stripe drain, a
case notice, a callback: milliseconds each). This one runs each job in the
worker's own process, as RQ's SimpleWorker does, and handles the database
connection as Django does around a request: before and after each job, a
connection that outlived `CONN_MAX_AGE` or was left in a failed state is closed;
before each job, one that does not answer (a restarted or terminated backend) is
closed too. The next query opens a new one.

What the fork gave and this keeps otherwise:
- A job's timeout still stops it (SIGALRM in this process: RQ's death penalty).
- A worker SIGKILLed mid-job loses that job as before: its transaction rolls back,
  and the periodic jobs find the work again in the database (docs/deployment.md,
  "A worker killed").
- A job's memory stays in the process. Our jobs hold nothing between runs;
  `rqworker --max-jobs N` under a process manager that restarts it bounds any
  slow growth (docs/deployment.md).
"""

from __future__ import annotations

from django.db import close_old_connections, connections
from rq.worker import SimpleWorker


class Worker(SimpleWorker):
    def perform_job(self, job, queue) -> bool:
        _usable_connections()
        try:
            return super().perform_job(job, queue)
        finally:
            close_old_connections()


def _usable_connections() -> None:
    """Close what Django would close after a request, and any connection that no longer
    answers (`SELECT 1`): a backend terminated while the worker waited is not known to
    be dead until it is used, and the job would fail on it (a forked work horse always
    started with a new connection)."""
    close_old_connections()
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()
