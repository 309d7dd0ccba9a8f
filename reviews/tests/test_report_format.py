"""The two report forms parse to one record, by the rules in docs/fsar-report-format.md."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsar.testing import report_md
from reviews.reports import (
    MAX_REPORT_BYTES,
    ReportInvalid,
    ReportRecord,
    ReportTooLarge,
    parse_json,
    parse_markdown,
    render_markdown,
    top_level_section_lines,
    unclosed_fence,
)


def test_the_seed_report_parses_to_its_record(seed_md):
    record = parse_markdown(seed_md)
    assert record.id == "fsar_23be25a2-d60f-4876-be4d-6b8deacdf09a"
    assert record.timestamp == datetime(2026, 1, 1, 20, 18, 4, 343000, tzinfo=UTC)
    assert record.severity == 6
    assert record.block_execution is False
    assert record.task_type == "self_improvement"
    assert len(record.risks) == 3
    assert len(record.mitigations) == 3
    assert record.risks[0] == "Slow failure: unnoticed degradation accumulating by 2028-01-01"
    assert record.mitigations[2] == "Prefer reversible rollouts; keep rollback artifacts warm and tested"
    assert "### Specific Improvements:" in record.proposal
    assert "  ```sql\n  ALTER TABLE execution_tasks ADD COLUMN ai_model TEXT;\n  ```" in record.proposal
    assert record.proposal.startswith("self_improvement:  To address")
    assert record.proposal.endswith("high standards of safety and ethical practices.")


def test_the_seed_round_trips_through_markdown_and_json(seed_md):
    record = parse_markdown(seed_md)
    assert parse_markdown(render_markdown(record)) == record
    assert parse_json(json.dumps(record.as_json())) == record


def test_crlf_and_lf_parse_the_same(seed_md):
    assert parse_markdown(seed_md.replace(b"\n", b"\r\n")) == parse_markdown(seed_md)


def test_a_bom_is_ignored_and_non_utf8_is_refused(seed_md):
    assert parse_markdown(b"\xef\xbb\xbf" + seed_md) == parse_markdown(seed_md)
    with pytest.raises(ReportInvalid, match="not UTF-8"):
        parse_markdown(seed_md.replace(b"Slow", b"Sl\xffw"))


def test_section_headings_inside_a_fence_belong_to_the_proposal():
    proposal = "implement_idea: x\n\n```md\n## Risks\n- not a risk\n```\n\nafter"
    record = parse_markdown(report_md("r1", proposal=proposal))
    assert record.proposal == proposal
    assert record.risks == ("it might break",)


def test_bullet_continuation_lines_join_with_common_indentation_removed():
    text = report_md("r1").replace("- it might break", "- first line\n    indented more\n  back\n\n  after blank")
    record = parse_markdown(text)
    assert record.risks == ("first line\n  indented more\nback\n\nafter blank",)
    assert parse_markdown(render_markdown(record)) == record


def test_absent_sections_are_empty_lists():
    text = "# FSAR Proposal Report\n- id: a\n- timestamp: 2026-01-01T00:00:00+02:00\n- severity: 0\n"
    text += "- block_execution: true\n- proposal:\nsomething\n"
    record = parse_markdown(text)
    assert record.risks == () and record.mitigations == ()
    assert record.timestamp == datetime(2025, 12, 31, 22, 0, tzinfo=UTC)
    assert record.task_type is None


@pytest.mark.parametrize(
    "change,field,line",
    [
        (("- severity: 6", "- severity: 6.0"), "severity", 4),
        (("- severity: 6", "- severity: -1"), "severity", 4),
        (("- severity: 6", "- severity: 2147483648"), "severity", 4),
        (("- block_execution: false", "- block_execution: False"), "block_execution", 5),
        (("- timestamp: 2026-02-01T10:00:00Z", "- timestamp: 2026-02-01T10:00:00"), "timestamp", 3),
        (("- timestamp: 2026-02-01T10:00:00Z", "- timestamp: yesterday"), "timestamp", 3),
        (("- id: r1\n", ""), "id", None),
        (("- proposal:\n\nimplement_idea: add a cache\n", "- proposal:\n\n"), "proposal", 6),
        (("- test it", "not a bullet"), "mitigations", 14),
        (("- severity: 6", "- colour: blue\n- severity: 6"), "colour", 4),
    ],
)
def test_malformed_markdown_names_the_field_and_line(change, field, line):
    text = report_md("r1").replace(*change)
    with pytest.raises(ReportInvalid) as caught:
        parse_markdown(text)
    assert caught.value.field == field
    assert caught.value.line == line


@pytest.mark.parametrize(
    "change,field",
    [
        ({"severity": "6"}, "severity"),
        ({"severity": 6.5}, "severity"),
        ({"timestamp": "2026-02-01 10:00:00Z"}, "timestamp"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp"),
        ({"id": "r\u00851"}, "id"),
        ({"id": "r\ufeff"}, "id"),
        ({"severity": True}, "severity"),
        ({"block_execution": "false"}, "block_execution"),
        ({"block_execution": 0}, "block_execution"),
        ({"risks": "one"}, "risks"),
        ({"risks": ["ok", 3]}, "risks[1]"),
        ({"mitigations": ["  "]}, "mitigations[0]"),
        ({"id": None}, "id"),
        ({"extra": 1}, "extra"),
        ({"proposal": "x\n## Mitigations\n- sneaky"}, "proposal"),
        ({"proposal": "x\n```\nnever closed"}, "proposal"),
    ],
)
def test_json_types_are_strict(change, field):
    data = {**parse_markdown(report_md("r1")).as_json(), **change}
    with pytest.raises(ReportInvalid) as caught:
        parse_json(json.dumps(data))
    assert caught.value.field == field


def test_a_report_over_one_mebibyte_is_too_large():
    with pytest.raises(ReportTooLarge):
        parse_markdown(b"x" * (MAX_REPORT_BYTES + 1))


# ------------------------------------------------------------------ hypothesis

line_text = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\r\x85"),
        min_size=0,
        max_size=30,
    ),
    st.sampled_from(
        ["", "  ", "```", "~~~~", "```python", "## Risks", "## Mitigations", "- item", "  - nested", "# x"]
    ),
)


@st.composite
def items(draw) -> str:
    first = draw(line_text.filter(lambda s: s.strip()))
    more = draw(st.lists(line_text, max_size=3))
    text = "\n".join([first, *more])
    # Only what the markdown form can express: a bullet is its normalised self.
    from reviews.reports import normalise_item

    text = normalise_item(text)
    return text


@st.composite
def proposals(draw) -> str:
    body = draw(st.lists(line_text, min_size=1, max_size=6))
    if draw(st.booleans()):
        body += ["```", "## Risks", "```"]
    prefix = draw(st.sampled_from(["", "implement_idea:", "self_improvement: ", "idea_implementation:x"]))
    text = prefix + "\n".join(body)
    from reviews.reports import trim_blank_lines

    return trim_blank_lines(text)


@st.composite
def records(draw) -> ReportRecord:
    proposal = draw(
        proposals().filter(lambda p: p.strip() and not top_level_section_lines(p) and not unclosed_fence(p))
    )
    when = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
    return ReportRecord(
        id=draw(st.from_regex(r"[A-Za-z0-9_:.-]{1,40}", fullmatch=True).filter(lambda i: i not in (".", ".."))),
        timestamp=when,
        severity=draw(st.integers(min_value=0, max_value=2_147_483_647)),
        block_execution=draw(st.booleans()),
        proposal=proposal,
        risks=tuple(draw(st.lists(items(), max_size=4))),
        mitigations=tuple(draw(st.lists(items(), max_size=4))),
        supersedes=draw(st.none() | st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)),
    )


@settings(max_examples=300, deadline=None)
@given(records())
def test_every_expressible_record_round_trips_and_both_forms_agree(record):
    markdown = render_markdown(record)
    assert parse_markdown(markdown) == record
    assert parse_markdown(markdown.replace("\n", "\r\n").encode()) == record
    assert parse_json(json.dumps(record.as_json())) == record


def test_the_schemas_id_pattern_is_the_parsers_rule_for_a_new_id():
    """NEW_ID_PATTERN (in the API schema) says what _URL_SAFE_ID says, without a lookahead."""
    import itertools
    import re

    from reviews.reports import _URL_SAFE_ID, NEW_ID_PATTERN

    alphabet = ["a", ".", "-", "~", "Z", "9", " ", "/", "é"]
    for n in range(1, 5):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            assert bool(_URL_SAFE_ID.fullmatch(text)) == bool(re.fullmatch(NEW_ID_PATTERN, text)), text
