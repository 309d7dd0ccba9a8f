"""The periodic jobs and how often each runs (seconds). One list, used by
rqcron (fsar/cron.py) with Redis and by `manage.py run_periodic` without it."""

from tasks.jobs import fail_abandoned_tasks

PERIODIC_JOBS = [
    (fail_abandoned_tasks, 300),
]
