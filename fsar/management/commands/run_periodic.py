import logging
import time

from django.core.management.base import BaseCommand

from fsar.periodic import PERIODIC_JOBS

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the periodic jobs in a loop (the embedded default, without Redis and rqcron). "
        "--once runs each job once and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true")
        parser.add_argument("--tick", type=int, default=10, help="seconds between checks")

    def handle(self, *args, once: bool, tick: int, **options) -> None:
        last_run: dict = {}
        while True:
            now = time.monotonic()
            for job, every in PERIODIC_JOBS:
                if once or now - last_run.get(job, -every) >= every:
                    last_run[job] = now
                    try:
                        result = job()
                        logger.info("periodic %s: %s", job.__name__, result)
                    except Exception:  # a failing job must not stop the others
                        logger.exception("periodic job %s failed", job.__name__)
            if once:
                return
            time.sleep(tick)
