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
# they enqueue. The shift is made once, in the worker process, which marks its environment:
# the processes a test starts (rqworker, gunicorn) load these settings with that
# environment and keep the REDIS_URL they were given, the worker's (shifted already) or
# one the test chose (the fault tests' private redis-server, fsar/tests/faults_support.py).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL") and "FSAR_TESTS_REDIS_SHIFTED" not in os.environ:
    _url = urlparse(os.environ["REDIS_URL"])
    _database = int(_url.path.strip("/") or 0) + int(_worker[2:])
    os.environ["REDIS_URL"] = _url._replace(path=f"/{_database}").geturl()
    os.environ["FSAR_TESTS_REDIS_SHIFTED"] = _worker

from fsar.settings import *  # noqa: E402, F403
