"""`pytest -n 2 --dist loadgroup` (CI's PostgreSQL pass) runs the tests of one
`xdist_group` on one worker: the fault tests are one group, so two of them never run
at once (docs/testing.md); and it keeps the collection's order (pytest-django's:
transactional tests after the others), not the largest group first. On pytest 9.2,
with pytest-xdist 3.8.0, both need fsar/tests/xdist_groups.py."""

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
    with open("ran.txt", "a") as out:
        out.write(f"{__name__} {n} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""

UNGROUPED = """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_other(n):
    with open("ran.txt", "a") as out:
        out.write(f"{__name__} {n} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_the_tests_of_one_xdist_group_run_on_one_worker_in_the_collections_order(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_a_first.py").write_text(UNGROUPED)  # collected before the group
    for name in ("test_faults_a", "test_faults_b"):
        (tmp_path / f"{name}.py").write_text(GROUPED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:django",
         "-p", "no:cacheprovider", "-p", "fsar.tests.xdist_groups"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line.split() for line in (tmp_path / "ran.txt").read_text().splitlines()]
    grouped = [(module, worker) for module, _, worker in ran if module.startswith("test_faults_")]
    assert len(grouped) == 8
    assert len({worker for _, worker in grouped}) == 1, ran
    for worker in {"gw0", "gw1"}:  # each worker starts on a test collected before the group
        first = next(module for module, _, on in ran if on == worker)
        assert first == "test_a_first", ran
