"""Enqueueing an RQ job by its dotted path, once the transaction commits.

Services enqueue jobs by reference so that they need not import their app's jobs
module (the jobs call the services: importing them back would be a cycle). The
path is resolved when the job is asked for, so a misspelt one fails there, in
the caller, rather than later in a worker; the job is enqueued after the
current transaction commits (at once outside one), as django-rq's default
`on_db_commit` mode does, and not at all if it rolls back. With the embedded
default (no REDIS_URL: fakeredis, ASYNC False) the job runs inline at commit.
"""

from __future__ import annotations

import django_rq
from django.db import transaction
from django.utils.module_loading import import_string


def enqueue_on_commit(path: str, *args, queue: str = "default", **kwargs) -> None:
    """Enqueue the job at `path` (e.g. "reviews.jobs.deliver_callback") with
    `args`/`kwargs` on `queue` once the current transaction commits."""
    func = import_string(path)
    transaction.on_commit(lambda: django_rq.get_queue(queue).enqueue(func, *args, **kwargs))
