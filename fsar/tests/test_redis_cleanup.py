"""The test run leaves the Redis database it used as it found it (conftest.redis_left_as_found)."""

import fakeredis
from rq import Queue

from fsar.testing import forget_keys_made_since


def say(text: str) -> str:
    return text


def test_the_keys_a_job_leaves_behind_are_deleted_and_the_others_kept():
    connection = fakeredis.FakeStrictRedis()
    connection.set("someone-elses", "1")
    before = set(connection.scan_iter())
    Queue("default", connection=connection, is_async=False).enqueue(say, "hi")
    assert any(key.startswith(b"rq:") for key in connection.scan_iter())  # the job really left keys
    assert forget_keys_made_since(connection, before) > 0
    assert set(connection.scan_iter()) == {b"someone-elses"}
