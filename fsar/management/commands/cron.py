"""`manage.py cron [fsar.cron]`: django-rq's `rqcron`, kept alive through Redis outages.

RQ's cron scheduler leaves its loop on the first Redis error: one restart of
Redis and no periodic job runs again until someone restarts the scheduler (the
Stripe drain, callback retries, invoice runs…). This one keeps its schedule in
memory, waits (1 s, doubling up to 30 s) while Redis cannot be reached, and goes
on where it stopped: a job that was due while Redis was down is enqueued once
when it is back (RQ only advances a job's next time after enqueueing it).
fsar/tests/test_faults_redis.py kills Redis under it.
"""

from __future__ import annotations

import logging
import time

from django.core.management.base import BaseCommand
from django_rq.cron import DjangoCronScheduler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import StopRequested

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30


class KeptAliveScheduler(DjangoCronScheduler):
    def start(self) -> None:
        self._install_signal_handlers()
        registered = False
        wait = 1.0
        try:
            while True:
                try:
                    if not registered:
                        self.register_birth()
                        registered = True
                    if self.enqueue_jobs():
                        self.save()
                    self.heartbeat()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    logger.error("cron: Redis unavailable (%s); trying again in %.0f s", exc, wait)
                    time.sleep(wait)
                    wait = min(wait * 2, MAX_WAIT_SECONDS)
                    continue
                wait = 1.0
                sleep_time = self.calculate_sleep_interval()
                if sleep_time > 0:
                    time.sleep(sleep_time)
        except (KeyboardInterrupt, StopRequested):
            logger.info("cron %s: stop requested", self.name)
        finally:
            try:
                self.register_death()
            except (RedisConnectionError, RedisTimeoutError):
                pass


class Command(BaseCommand):
    help = "Run the periodic jobs' RQ cron scheduler (as rqcron), surviving Redis outages."

    def add_arguments(self, parser) -> None:
        parser.add_argument("config_path", nargs="?", default="fsar.cron", help="cron module (default fsar.cron)")

    def handle(self, *args, config_path: str, **options) -> None:
        scheduler = KeptAliveScheduler(logging_level=logging.INFO)
        scheduler.load_config_from_file(config_path)
        self.stdout.write(f"cron: {len(scheduler.get_jobs())} periodic jobs from {config_path}")
        scheduler.start()
