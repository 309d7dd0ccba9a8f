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

import functools
import logging

import django_rq
from django.conf import settings
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
            django_rq.get_queue(queue, connection=_connection(queue)).enqueue(func, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.error("Redis unavailable: job %s%r not enqueued (%s)", path, args, exc)

    transaction.on_commit(enqueue)


def _connection(queue: str):
    """The queue's Redis client, one per process and connection settings: its pool
    keeps the connection. django_rq builds a new client, pool and connection (with
    its handshake) on every get_queue, which cost a held report's two enqueues more
    than the rest of its request (docs/benchmarks.md). A connection Redis dropped is
    discarded by the pool and made again on the next use; a forked child's pool
    starts afresh."""
    conf = settings.RQ_QUEUES[queue]
    return _client(queue, repr(sorted((k, v) for k, v in conf.items() if k != "ASYNC")))


@functools.cache
def _client(queue: str, connection_settings: str):
    return django_rq.get_connection(queue)
