"""enqueue_on_commit: a job named by its dotted path runs once the transaction
commits (inline here: fakeredis, ASYNC False), never after a rollback, and a
misspelt path fails in the caller, not later in a worker."""

import pytest
from django.db import transaction

from core.jobs import enqueue_on_commit

pytestmark = pytest.mark.django_db

RAN: list = []


def record(*args, **kwargs) -> None:
    RAN.append((args, kwargs))


@pytest.fixture(autouse=True)
def _empty():
    RAN.clear()
    yield
    RAN.clear()


def test_the_job_runs_with_its_arguments_after_commit_not_before(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("core.tests.test_jobs.record", 1, "two", three=3)
        assert RAN == []  # still inside the transaction
    assert RAN == [((1, "two"), {"three": 3})]


def test_a_rolled_back_transaction_enqueues_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                enqueue_on_commit("core.tests.test_jobs.record", 1)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert RAN == []


def test_a_misspelt_path_fails_in_the_caller():
    with pytest.raises(ImportError):
        enqueue_on_commit("core.tests.test_jobs.no_such_job")
    with pytest.raises(ImportError):
        enqueue_on_commit("reviews.jobz.deliver_callback")
