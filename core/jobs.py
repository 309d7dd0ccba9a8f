"""Enqueueing an RQ job by its dotted path, once the transaction commits.

Services enqueue jobs by reference so that they need not import their app's jobs
module (the jobs call the services: importing them back would be a cycle). The
path is resolved when the job is asked for, so a misspelt one fails there, in
the caller, rather than later in a worker; the job is enqueued after the
current transaction commits (at once outside one), as django-rq's default
`on_db_commit` mode does, and not at all if it rolls back. With the embedded
default (no REDIS_URL: fakeredis, ASYNC False) the job runs inline at commit.

Redis down at that moment does not turn a committed write into an error: the
enqueue is logged and dropped (what was committed stays). Every job that matters
for correctness has a periodic safety net that finds its work in the database
(callbacks: `retry_due_callbacks`; Stripe events: `stripe_events_drain`; tasks held
on a model version: `redecide_all_unregistered`; quorum: `recheck_short_of_members`);
a notification mail of that moment is lost (docs/deployment.md, "Redis down").
"""

from __future__ import annotations

import logging

import django_rq
from django.db import transaction
from django.utils.module_loading import import_string
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)


def enqueue_on_commit(path: str, *args, queue: str = "default", **kwargs) -> None:
    """Enqueue the job at `path` (e.g. "reviews.jobs.deliver_callback") with
    `args`/`kwargs` on `queue` once the current transaction commits."""
    func = import_string(path)

    def enqueue() -> None:
        try:
            django_rq.get_queue(queue).enqueue(func, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.error("Redis unavailable: job %s%r not enqueued (%s)", path, args, exc)

    transaction.on_commit(enqueue)
