"""The settings the test suite runs with: the project's, with DEBUG on.

DEBUG is off unless set (fsar/settings.py), so the tests set it themselves, as
`make run` does; pytest-django loads this module (pyproject.toml), and the
subprocesses tests start (manage.py, rqworker) inherit both through the
environment. The DEBUG=0 paths are tested in subprocesses that set it."""

import os

os.environ["DEBUG"] = "1"

from fsar.settings import *  # noqa: E402, F403
