"""`manage.py ingest_reports`: files and folders, a summary, safe to rerun."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from fsar.testing import report_md
from reviews.models import Report

pytestmark = pytest.mark.django_db


def run(*paths) -> str:
    out, err = StringIO(), StringIO()
    call_command("ingest_reports", *map(str, paths), stdout=out, stderr=err)
    return out.getvalue()


def test_it_ingests_a_folder_reports_bad_files_and_is_safe_to_rerun(tmp_path, seed_md):
    (tmp_path / "seed.md").write_bytes(seed_md)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "held.json").write_text(
        json.dumps(
            {
                "id": "j1",
                "timestamp": "2026-03-01T00:00:00+01:00",
                "proposal": "self_improvement: rewrite the gate",
                "severity": 50,
                "block_execution": False,
            }
        )
    )
    (tmp_path / "bad.md").write_text("# Not a report\n")
    (tmp_path / "clash.md").write_text(report_md("j1", severity=1))
    (tmp_path / "notes.txt").write_text("ignored")

    output = run(tmp_path)
    assert "4 file(s): 2 ingested, 1 conflicting, 1 invalid" in output
    assert "bad.md: invalid: heading: line 1" in output
    assert "held.json: conflicting: report 'j1' already exists with a different" in output  # sorted: clash.md first
    assert set(Report.objects.values_list("report_id", flat=True)) == {
        "j1",
        "fsar_23be25a2-d60f-4876-be4d-6b8deacdf09a",
    }

    again = run(tmp_path / "seed.md", tmp_path / "missing.md", tmp_path / "clash.md")
    assert "3 file(s): 2 unchanged, 1 invalid" in again
    assert "missing.md: invalid: no such file or folder" in again
    assert Report.objects.count() == 2
