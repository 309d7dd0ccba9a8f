"""The settings the test suite runs with: the project's, with DEBUG on.

DEBUG is off unless set (fsar/settings.py), so the tests set it themselves, as
`make run` does; pytest-django loads this module (pyproject.toml), and the
subprocesses tests start (manage.py, rqworker) inherit both through the
environment. The DEBUG=0 paths are tested in subprocesses that set it."""

import os
from urllib.parse import urlparse

os.environ["DEBUG"] = "1"

# Under pytest-xdist (`pytest -n N`, with PostgreSQL and Redis) each worker process gets its
# own test database (pytest-django adds its name, gw0, gw1…) and, here, its own Redis
# database: the run's REDIS_URL's plus the worker's number. Tests count and clear what
# they enqueue. The processes tests start (rqworker, gunicorn) load these settings with
# the worker's environment, so the offset is taken from the run's URL, kept aside the
# first time, never from an already shifted one.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    _url = urlparse(os.environ.setdefault("FSAR_TESTS_RUN_REDIS_URL", os.environ["REDIS_URL"]))
    _database = int(_url.path.strip("/") or 0) + int(_worker[2:])
    os.environ["REDIS_URL"] = _url._replace(path=f"/{_database}").geturl()

from fsar.settings import *  # noqa: E402, F403
