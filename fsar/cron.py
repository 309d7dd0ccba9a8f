"""Periodic jobs, for `manage.py cron` (rqcron fsar.cron, kept alive through Redis outages) beside `manage.py rqworker`.

In the embedded default (no Redis) `manage.py run_periodic` runs the same list
in a loop; see PERIODIC_JOBS.
"""

from rq import cron

from fsar.periodic import PERIODIC_JOBS

for job, seconds in PERIODIC_JOBS:
    cron.register(job, queue_name="default", interval=seconds)
