"""The importers read what promptfoo and garak write (sample files in samples/,
written from the tools' formats) and fail closed."""

import json

import pytest

from assurance import importers
from assurance.tests.support import sample


def test_both_garak_eval_shapes_give_the_same_attack_success_rate():
    new = importers.parse_garak(sample("garak_new.report.jsonl"))
    old = importers.parse_garak(sample("garak_old.report.jsonl"))
    assert new.figures["attack_success_rate"] == pytest.approx(6 / 120)
    assert old.figures["attack_success_rate"] == new.figures["attack_success_rate"]
    assert old.figures["pass_rate"] == new.figures["pass_rate"] == pytest.approx(114 / 120)
    assert (new.tool_version, old.tool_version) == ("0.10.3.1", "0.9.0.9")
    assert not new.incomplete and not old.incomplete
    probes = {(p["probe"], p["detector"]): p for p in new.details["probes"]}
    assert probes[("dan.Dan_11_0", "dan.DAN")]["fails"] == 1
    assert probes[("promptinject.HijackHateHumans", "promptinject.AttackRogueString")]["attack_success_rate"] == 0.05


def test_unknown_garak_entries_are_skipped_and_counted():
    assert importers.parse_garak(sample("garak_new.report.jsonl")).skipped_entries == 1
    assert importers.parse_garak(sample("garak_old.report.jsonl")).skipped_entries == 0


def test_a_garak_report_without_completion_is_incomplete():
    parsed = importers.parse_garak(sample("garak_no_completion.report.jsonl"))
    assert "completion" in parsed.incomplete
    assert parsed.figures["attack_success_rate"] == pytest.approx(6 / 120)


def test_a_non_json_line_names_the_line():
    lines = sample("garak_new.report.jsonl").decode().splitlines()
    lines.insert(3, "this is not json")
    with pytest.raises(importers.MalformedReport, match="line 4 is not JSON"):
        importers.parse_garak("\n".join(lines).encode())


def test_an_eval_record_without_counts_names_the_field():
    report = b'{"entry_type": "eval", "probe": "dan.Dan_11_0", "detector": "dan.DAN", "passed": 3}\n'
    with pytest.raises(importers.MalformedReport, match="line 1: total"):
        importers.parse_garak(report)


def test_promptfoo_passing_results():
    parsed = importers.parse_promptfoo(sample("promptfoo_pass.json"))
    assert parsed.figures == {
        "attack_success_rate": 0.0,
        "pass_rate": 1.0,
        "error_count": 0,
        "test_count": 20,
        "failure_count": 0,
    }
    assert parsed.tool_version == "0.118.4"
    assert not parsed.error


def test_promptfoo_errors_without_failures_are_an_error():
    parsed = importers.parse_promptfoo(sample("promptfoo_errors.json"))
    assert parsed.figures["failure_count"] == 0
    assert parsed.figures["error_count"] == 1
    assert "error" in parsed.error
    assert parsed.details["failed_tests"][0]["kind"] == "error"
    assert parsed.tool_version == "results format v3"


def test_a_test_whose_grader_errored_counts_as_an_error_even_if_marked_success():
    doc = json.loads(sample("promptfoo_pass.json"))
    doc["results"]["results"][3]["error"] = "grader crashed"  # stats still say all passed (promptfoo #10930)
    parsed = importers.parse_promptfoo(json.dumps(doc).encode())
    assert parsed.figures["error_count"] == 1 and parsed.error


def test_promptfoo_failures_are_listed():
    parsed = importers.parse_promptfoo(sample("promptfoo_fail.json"))
    assert parsed.figures["attack_success_rate"] == pytest.approx(0.1)
    assert [t["plugin"] for t in parsed.details["failed_tests"]] == ["pii:direct", "harmful:hate"]


def test_truncated_promptfoo_json_names_line_and_column():
    content = sample("promptfoo_pass.json")[:500]
    with pytest.raises(importers.MalformedReport, match=r"not valid JSON: .* at line \d+ column \d+"):
        importers.parse_promptfoo(content)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["results"]["stats"].pop("failures"), "results.stats.failures"),
        (lambda d: d["results"]["results"][2].update(success="yes"), r"results.results\[2\].success"),
        (lambda d: d.pop("results"), "`results`"),
    ],
)
def test_promptfoo_missing_fields_are_named(mutate, field):
    doc = json.loads(sample("promptfoo_pass.json"))
    mutate(doc)
    with pytest.raises(importers.MalformedReport, match=field):
        importers.parse_promptfoo(json.dumps(doc).encode())
