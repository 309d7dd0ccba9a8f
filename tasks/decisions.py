"""Waiting for a task's gate decision to change, holding no database connection.

`GET /api/v1/tasks/{id}/decision?wait=N` (tasks/api.py) reads the task, lets go
of its database connection, and sleeps until the task changes or N seconds
pass. The task services announce every change of a task on commit
(`announce`, called from `tasks.services`' one save helper, so every path that
changes a task's status or gate fields announces it):

- with REDIS_URL, the task id is published on one Redis channel, and one
  listener thread per web process wakes the requests waiting on that task;
- without it (the embedded default), waiters in the announcing process wake at
  once, and every waiter also re-reads the task every
  TASK_DECISION_POLL_SECONDS, which catches changes made by other processes
  (the periodic loop, a second web process).

A waiter registers before it reads, so a change committed between its read and
its sleep still wakes it. When the listener loses Redis it wakes every waiter,
and they poll like the embedded default until it is subscribed again; a
message published while it was away is covered by that re-read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from typing import TypeVar
from urllib.parse import urlparse

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long the waiter that starts a process's Redis listener waits for it to subscribe
# before it falls back to polling.
SUBSCRIBE_TIMEOUT_SECONDS = 2.0


class Waiters:
    """The requests of this process waiting on each task, as events to set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_task: dict[int, set[threading.Event]] = defaultdict(set)

    def add(self, task_id: int) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._by_task[task_id].add(event)
        return event

    def remove(self, task_id: int, event: threading.Event) -> None:
        with self._lock:
            events = self._by_task.get(task_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._by_task[task_id]

    def wake(self, task_id: int) -> None:
        with self._lock:
            events = list(self._by_task.get(task_id, ()))
        for event in events:
            event.set()

    def wake_all(self) -> None:
        with self._lock:
            events = [event for events in self._by_task.values() for event in events]
        for event in events:
            event.set()

    def count(self) -> int:
        with self._lock:
            return sum(len(events) for events in self._by_task.values())


waiters = Waiters()


def channel() -> str:
    """Pub/sub channels are shared by every database of a Redis server: name ours
    after the database REDIS_URL selects, so deployments sharing a server stay apart."""
    return _channel(settings.REDIS_URL)


@cache
def _channel(url: str) -> str:
    database = urlparse(url).path.strip("/") or "0"
    return f"fsar:db{database}:task-decisions"


class Publisher:
    """PUBLISH on one Redis connection of this process's own, kept open: one command
    and its reply, without redis-py's client layers around it (its pool, its retry
    policy and its per-command telemetry took about twice the CPU of the command
    itself, on every start and finish of a task: 127 against 57 us per publish, A/B in
    one process on the 2-core bench host).

    A connection that fails (Redis restarted, an idle connection dropped) is closed,
    and the command sent once more on a new one; when that fails too, the error is
    raised (`_publish` logs it and wakes this process's waiters). A forked child
    opens its own connection, never writes on its parent's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection = None
        self._owner: tuple[int, str] | None = None  # (pid, url) the connection is for

    def publish(self, url: str, channel: str, message: str) -> int:
        """PUBLISH `message` on `channel`; the number of subscribers that received it."""
        with self._lock:
            try:
                return self._send(url, channel, message)
            except Exception:
                return self._send(url, channel, message)  # once more, on a new connection

    def _send(self, url: str, channel: str, message: str) -> int:
        connection = self._connection_for(url)
        try:
            connection.send_command("PUBLISH", channel, message)
            return connection.read_response()
        except Exception:
            self._connection = None
            connection.disconnect()  # shuts the socket down only in the process that opened it
            raise

    def _connection_for(self, url: str):
        owner = (os.getpid(), url)
        if self._connection is None or self._owner != owner:
            import redis

            pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            self._connection, self._owner = pool.make_connection(), owner
        return self._connection


publisher = Publisher()


def announce(task_id: int) -> None:
    """Tell the waiters on `task_id` that it changed, once the transaction commits
    (at once outside one). Never raises: a waiter that misses it still answers
    with the current state when its wait ends."""
    transaction.on_commit(lambda: _publish(task_id))


def _publish(task_id: int) -> None:
    if settings.REDIS_URL:
        try:
            publisher.publish(settings.REDIS_URL, channel(), str(task_id))
            return
        except Exception:
            logger.warning("Could not announce a change of task %s on Redis", task_id, exc_info=True)
    waiters.wake(task_id)


class Listener:
    """One thread per process, subscribed to the channel, waking the waiters on
    each task id it hears about. Reconnects on its own after losing Redis."""

    def __init__(self) -> None:
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def ready(self) -> bool:
        """Whether the listener is subscribed. Starts it if this process has none (a
        forked worker does not inherit the thread), and then waits for it a moment
        (SUBSCRIBE_TIMEOUT_SECONDS); later calls only look, so while Redis is away
        requests poll at once instead of each waiting for it."""
        with self._lock:
            starting = self._thread is None or not self._thread.is_alive() or self._pid != os.getpid()
            if starting:
                self.subscribed = threading.Event()
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(settings.REDIS_URL, channel(), self.subscribed, self._stop),
                    name="fsar-decision-listener",
                    daemon=True,
                )
                self._thread.start()
        return self.subscribed.wait(SUBSCRIBE_TIMEOUT_SECONDS) if starting else self.subscribed.is_set()

    def close(self) -> None:
        """Stop the thread (within a few seconds)."""
        self._stop.set()

    @staticmethod
    def _run(url: str, name: str, subscribed: threading.Event, stop: threading.Event) -> None:
        import redis

        backoff = 0.5
        while not stop.is_set():
            pubsub = None
            try:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=15
                )
                pubsub = client.pubsub()
                pubsub.subscribe(name)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        subscribed.set()
                        backoff = 0.5
                        waiters.wake_all()  # anything announced before this was missed: re-read
                    elif message["type"] == "message":
                        try:
                            waiters.wake(int(message["data"]))
                        except ValueError:
                            pass
            except Exception:
                logger.warning("Task decision listener lost Redis; waiters poll until it is back", exc_info=True)
            finally:
                subscribed.clear()
                waiters.wake_all()
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)


listener = Listener()


def release_connection() -> None:
    """Give the database connection back while waiting (never inside a transaction:
    in-process tests run in one, and their connection must stay)."""
    if not connection.in_atomic_block:
        connection.close()


def wait_for_change(task_id: int, *, read: Callable[[], T], changed: Callable[[T], bool], seconds: float) -> T:
    """`read()` now, then again each time task `task_id` is announced (or every
    TASK_DECISION_POLL_SECONDS where no Redis listener is subscribed), until
    `changed(result)` or `seconds` have passed; returns the last read. No
    database connection is held between reads."""
    if seconds <= 0:
        return read()
    deadline = time.monotonic() + seconds
    event = waiters.add(task_id)
    try:
        listening = bool(settings.REDIS_URL) and listener.ready()
        state = read()
        while not changed(state):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            release_connection()
            event.wait(remaining if listening else min(remaining, settings.TASK_DECISION_POLL_SECONDS))
            event.clear()
            listening = bool(settings.REDIS_URL) and listener.ready()
            state = read()
        return state
    finally:
        waiters.remove(task_id, event)
        release_connection()
