import pytest

from fsar.testing import REPORT_FIXTURES


@pytest.fixture
def seed_md() -> bytes:
    return (REPORT_FIXTURES / "seed_report.md").read_bytes()
