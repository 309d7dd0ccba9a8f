"""The periodic jobs the fault tests watch, every second instead of every minute:
`manage.py cron fsar.tests.fast_cron` (fsar/tests/test_faults_*.py). The jobs are
the ones of fsar/periodic.py; only the interval differs, so a test need not wait
a minute for the Stripe drain or the callback retry to come round."""

from rq import cron

from fsar.periodic import PERIODIC_JOBS

FAST = {"stripe_events_drain", "retry_due_callbacks"}

for job, _seconds in PERIODIC_JOBS:
    if job.__name__ in FAST:
        cron.register(job, queue_name="default", interval=1)
