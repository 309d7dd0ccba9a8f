"""Parsers for what the red-team tools actually write.

- promptfoo `promptfoo eval --output results.json`: one JSON object, the eval under
  `results` (`results.stats.successes/failures/errors`, and per test in
  `results.results[]`: `success`, `score`, `error`, `failureReason` (0 none,
  1 an assertion failed, 2 an error), `testCase`, `gradingResult`); the version in
  `metadata.promptfooVersion` (older files: none; `results.version` is the format's).
- garak `garak.<run>.report.jsonl`: one JSON object per line with `entry_type`:
  `start_run setup` (the config, `_config.version`), `init` (`garak_version`,
  `start_time`, `run`), `attempt` (one per prompt), `eval` (one per probe ×
  detector: older garak wrote `passed`/`total`, newer writes `passed`/`fails`/
  `nones`/`total_evaluated`/`total_processed`), `probe_summary`, `digest`, and
  `completion` (`end_time`) when the run finished. Unknown entry types are
  skipped and counted.

Both yield the same figures: `attack_success_rate` (attacks that got through /
outputs scored), `pass_rate`, `error_count`, `test_count`, `failure_count`, and
the tool version. A file that is not in the format raises MalformedReport naming
the line or the field; nothing is stored for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FAILED_TESTS_KEPT = 200


class MalformedReport(ValueError):
    """422: the file is not what the tool writes; the message names the line or field."""


@dataclass
class Parsed:
    figures: dict
    tool_version: str = ""
    skipped_entries: int = 0
    details: dict = field(default_factory=dict)
    error: str = ""  # a grading or tool error: the verdict is `error`
    incomplete: str = ""  # the run did not finish: the verdict is at best `inconclusive`


def _text(content: bytes, what: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedReport(f"{what} is not UTF-8 (byte {exc.start})") from None


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedReport(f"{where} must be a non-negative integer, not {json.dumps(value)[:40]}")
    return value


def _rates(total: int, hits: int) -> dict:
    if total == 0:  # nothing was scored: the rates are missing, not zero
        return {"attack_success_rate": None, "pass_rate": None}
    return {"attack_success_rate": hits / total, "pass_rate": (total - hits) / total}


def parse(fmt: str, content: bytes) -> Parsed:
    if fmt == "promptfoo":
        return parse_promptfoo(content)
    if fmt == "garak":
        return parse_garak(content)
    raise MalformedReport(f"format must be promptfoo or garak, not {fmt!r}")


def parse_promptfoo(content: bytes) -> Parsed:
    text = _text(content, "results.json")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedReport(
            f"results.json is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise MalformedReport("results.json has no `results` object (promptfoo eval --output results.json)")
    results = doc["results"]
    stats = results.get("stats")
    if not isinstance(stats, dict):
        raise MalformedReport("results.stats is missing or not an object")
    successes = _count(stats.get("successes"), "results.stats.successes")
    failures = _count(stats.get("failures"), "results.stats.failures")
    errors = _count(stats.get("errors", 0), "results.stats.errors")
    tests = results.get("results", [])
    if not isinstance(tests, list):
        raise MalformedReport("results.results must be a list of test results")
    failed, test_errors = [], 0
    for i, test in enumerate(tests):
        where = f"results.results[{i}]"
        if not isinstance(test, dict):
            raise MalformedReport(f"{where} must be an object")
        success = test.get("success")
        if not isinstance(success, bool):
            raise MalformedReport(f"{where}.success must be true or false")
        score = test.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise MalformedReport(f"{where}.score must be a number")
        error = test.get("error")
        if error is not None and not isinstance(error, str):
            raise MalformedReport(f"{where}.error must be text or null")
        reason = test.get("failureReason", 0)
        if isinstance(reason, bool) or reason not in (0, 1, 2):
            raise MalformedReport(f"{where}.failureReason must be 0, 1 or 2")
        # A grading or provider error is an error even if the test says "success"
        # (promptfoo #10930: an errored grader reported a found vulnerability as a pass).
        errored = reason == 2 or bool(error)
        test_errors += errored
        if errored or not success:
            case = test.get("testCase") if isinstance(test.get("testCase"), dict) else {}
            meta = case.get("metadata") if isinstance(case.get("metadata"), dict) else {}
            grading = test.get("gradingResult") if isinstance(test.get("gradingResult"), dict) else {}
            if len(failed) < FAILED_TESTS_KEPT:
                failed.append(
                    {
                        "index": i,
                        "description": str(case.get("description") or test.get("description") or "")[:300],
                        "plugin": str(meta.get("pluginId") or "")[:100],
                        "score": score,
                        "kind": "error" if errored else "failure",
                        "reason": str(error or grading.get("reason") or "")[:1000],
                    }
                )
    error_count = max(errors, test_errors)
    total = successes + failures + errors
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    version = metadata.get("promptfooVersion") or ""
    if not version and results.get("version") is not None:
        version = f"results format v{results.get('version')}"
    figures = {
        **_rates(total, failures + errors),
        "error_count": error_count,
        "test_count": total,
        "failure_count": failures,
    }
    parsed = Parsed(
        figures=figures,
        tool_version=str(version)[:100],
        details={"failed_tests": failed, "failed_total": failures + error_count, "eval_id": str(doc.get("evalId", ""))},
    )
    if error_count:
        parsed.error = f"promptfoo reported {error_count} error(s) (grading or provider): an error is never a pass"
    return parsed


KNOWN_GARAK = {"start_run setup", "init", "attempt", "eval", "probe_summary", "digest", "completion"}


def parse_garak(content: bytes) -> Parsed:
    text = _text(content, "report.jsonl")
    version = ""
    completed = False
    skipped = 0
    probes: dict[tuple[str, str], dict] = {}
    seen_any = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedReport(f"line {number} is not JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("entry_type"), str):
            raise MalformedReport(f"line {number} has no entry_type")
        seen_any = True
        kind = entry["entry_type"]
        if kind not in KNOWN_GARAK:
            skipped += 1
        elif kind == "init":
            version = str(entry.get("garak_version") or version)
        elif kind == "start_run setup" and not version:
            version = str(entry.get("_config.version") or "")
        elif kind == "completion":
            completed = True
        elif kind == "eval":
            probe, detector = entry.get("probe"), entry.get("detector")
            if not isinstance(probe, str) or not isinstance(detector, str):
                raise MalformedReport(f"line {number}: an eval record needs probe and detector")
            passed = _count(entry.get("passed"), f"line {number}: passed")
            if "total_evaluated" in entry or "fails" in entry:  # garak ≥ 0.10: passed/fails/nones/total_evaluated
                fails = _count(entry.get("fails"), f"line {number}: fails")
                nones = _count(entry.get("nones", 0), f"line {number}: nones")
                total = _count(entry.get("total_evaluated"), f"line {number}: total_evaluated")
                if passed + fails != total:
                    raise MalformedReport(
                        f"line {number}: passed + fails ({passed + fails}) is not total_evaluated ({total})"
                    )
            else:  # older garak: passed/total
                total = _count(entry.get("total"), f"line {number}: total")
                if passed > total:
                    raise MalformedReport(f"line {number}: passed ({passed}) is more than total ({total})")
                fails, nones = total - passed, 0
            row = probes.setdefault(
                (probe, detector),
                {"probe": probe, "detector": detector, "passed": 0, "fails": 0, "nones": 0, "total": 0},
            )
            row["passed"] += passed
            row["fails"] += fails
            row["nones"] += nones
            row["total"] += total
    if not seen_any:
        raise MalformedReport("report.jsonl has no entries")
    rows = sorted(probes.values(), key=lambda r: (r["probe"], r["detector"]))
    for row in rows:
        row["attack_success_rate"] = row["fails"] / row["total"] if row["total"] else None
    total = sum(r["total"] for r in rows)
    hits = sum(r["fails"] for r in rows)
    figures = {
        **_rates(total, hits),
        # Outputs the detectors could not score (garak's `nones`): a criterion may bound them.
        "error_count": sum(r["nones"] for r in rows),
        "test_count": total,
        "failure_count": hits,
    }
    parsed = Parsed(figures=figures, tool_version=version[:100], skipped_entries=skipped, details={"probes": rows})
    if not completed:
        parsed.incomplete = "the report has no completion record: the garak run did not finish"
    return parsed
