"""The periodic jobs are the same for rqcron (with Redis) and the embedded loop."""

import pytest
from django_rq.cron import DjangoCronScheduler

from fsar.periodic import PERIODIC_JOBS


@pytest.mark.django_db
def test_rqcron_loads_every_periodic_job_with_its_interval():
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("fsar.cron")
    loaded = {(job.func, job.interval) for job in scheduler.get_jobs()}
    assert loaded == set(PERIODIC_JOBS)
    assert PERIODIC_JOBS, "at least the abandoned-task job is periodic"
