"""`pytest -n 2 --dist loadgroup` (CI's PostgreSQL pass) runs the tests of one
`xdist_group` on one worker: the fault tests are one group, so two of them never run
at once (docs/testing.md). On pytest 9.2 that needs fsar/tests/xdist_groups.py."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("faults")

@pytest.mark.parametrize("n", range(4))
def test_grouped(n):
    with open("workers.txt", "a") as out:
        out.write(f"{__name__} {n} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""

UNGROUPED = """
import pytest

@pytest.mark.parametrize("n", range(8))
def test_other(n):
    pass
"""


def test_the_tests_of_one_xdist_group_run_on_one_worker(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name in ("test_faults_a", "test_faults_b"):
        (tmp_path / f"{name}.py").write_text(GROUPED)
    (tmp_path / "test_other.py").write_text(UNGROUPED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:django",
         "-p", "no:cacheprovider", "-p", "fsar.tests.xdist_groups"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line.split() for line in (tmp_path / "workers.txt").read_text().splitlines()]
    assert len(ran) == 8
    assert len({worker for *_, worker in ran}) == 1, ran
