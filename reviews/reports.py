"""FSAR reports: the two wire forms (markdown and JSON), parsed to one record.

The rules are written out for the AI side in docs/fsar-report-format.md; this
module is their executable form. Both parsers return a `ReportRecord`, and
`render_markdown(record)` writes the markdown form back, so that for every
record the markdown form can express, `parse_markdown(render_markdown(r)) == r`.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.jsonwalk import LONE_SURROGATE_MESSAGE, lone_surrogate_path
from tasks.api import DATETIME_RULE, is_rfc3339

MAX_REPORT_BYTES = 1024 * 1024
MAX_SEVERITY = 2_147_483_647
MAX_ID_LENGTH = 200
HEADING = "# FSAR Proposal Report"
SECTIONS = {"## Risks": "risks", "## Mitigations": "mitigations"}
TASK_TYPES = ("implement_idea", "idea_implementation", "self_improvement")
HEADER_KEYS = ("id", "timestamp", "severity", "block_execution", "supersedes")
REQUIRED = ("id", "timestamp", "severity", "block_execution", "proposal")

# What the API schema states (reviews/api.py), in regular expressions that mean the same
# to Python and to ECMAScript: explicit classes, no `\s` (the two differ on a few characters).
# Blank: what str.strip() removes. An id has no whitespace, control character or BOM.
_BLANK = "\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
ID_PATTERN = "^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+$"
TEXT_PATTERN = f"^[^\x00]*[^\x00{_BLANK}][^\x00]*$"  # something besides blanks, and no NUL
_ID = re.compile(ID_PATTERN)

_TASK_TYPE_PREFIX = re.compile(r"^(" + "|".join(TASK_TYPES) + r"):")
_HEADER_LINE = re.compile(r"^- ([a-z_]+):(?:[ \t]+(.*?))?[ \t]*$")
_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
# What a URL path segment carries unchanged: no "/", "?", "#", "%", "\\", no "." or ".." segment.
_URL_SAFE_ID = re.compile(r"(?!\.\.?$)[A-Za-z0-9._~:@+=-]+")
# The same rule without a lookahead, for the API schema (schema generators handle it).
NEW_ID_PATTERN = (
    r"^(?:[A-Za-z0-9_~:@+=-][A-Za-z0-9._~:@+=-]*"
    r"|\.(?:[A-Za-z0-9_~:@+=-][A-Za-z0-9._~:@+=-]*|\.[A-Za-z0-9._~:@+=-]+))$"
)


class ReportInvalid(Exception):
    """A report that cannot be parsed. `field` names the field, `line` (1-based)
    the markdown line, when there is one."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        where = f"line {line}: " if line else ""
        label = f"{field}: " if field else ""
        super().__init__(f"{label}{where}{message}")
        self.message = message
        self.field = field
        self.line = line


class ReportTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"the report is {size} bytes; the limit is {MAX_REPORT_BYTES} bytes")


@dataclass(frozen=True)
class ReportRecord:
    id: str
    timestamp: datetime
    severity: int
    block_execution: bool
    proposal: str
    risks: tuple[str, ...] = field(default_factory=tuple)
    mitigations: tuple[str, ...] = field(default_factory=tuple)
    supersedes: str | None = None

    @property
    def task_type(self) -> str | None:
        match = _TASK_TYPE_PREFIX.match(self.proposal)
        return match.group(1) if match else None

    def differences(self, other: ReportRecord) -> list[str]:
        names = ("timestamp", "severity", "block_execution", "proposal", "risks", "mitigations", "supersedes")
        return [name for name in names if getattr(self, name) != getattr(other, name)]

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "timestamp": format_timestamp(self.timestamp),
            "severity": self.severity,
            "block_execution": self.block_execution,
            "proposal": self.proposal,
            "risks": list(self.risks),
            "mitigations": list(self.mitigations),
            "supersedes": self.supersedes,
        }


# ---------------------------------------------------------------- shared rules


def decode(raw: bytes) -> str:
    """UTF-8 only (a leading byte-order mark is ignored); CRLF becomes LF."""
    if len(raw) > MAX_REPORT_BYTES:
        raise ReportTooLarge(len(raw))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportInvalid(f"not UTF-8 (byte {exc.start})", field="body") from None
    return normalise_newlines(text.removeprefix("\ufeff"))


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n")


def parse_timestamp(value: str, *, line: int | None = None) -> datetime:
    """ISO 8601 with `Z` or an offset; returned in UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReportInvalid(f"{value!r} is not an ISO 8601 timestamp", field="timestamp", line=line) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ReportInvalid(f"{value!r} has no `Z` or UTC offset", field="timestamp", line=line)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ReportInvalid(f"{value!r} is out of range in UTC", field="timestamp", line=line) from None


def format_timestamp(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.microsecond == 0:
        spec = "seconds"
    elif value.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _is_blank(line: str) -> bool:
    return not line.strip()


def trim_blank_lines(text: str) -> str:
    """Drop leading and trailing blank (or whitespace-only) lines; keep the rest verbatim."""
    lines = text.split("\n")
    while lines and _is_blank(lines[0]):
        lines.pop(0)
    while lines and _is_blank(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def normalise_item(text: str) -> str:
    """A bullet's text: its first line, then its continuation lines with their
    common indentation removed; whitespace-only lines emptied; surrounding
    whitespace dropped."""
    lines = [line if line.strip() else "" for line in normalise_newlines(text).strip().split("\n")]
    rest = textwrap.dedent("\n".join(lines[1:])) if len(lines) > 1 else ""
    return (lines[0] + ("\n" + rest if len(lines) > 1 else "")).strip()


def top_level_section_lines(text: str) -> list[tuple[int, str]]:
    """(index, heading) of every `## Risks` / `## Mitigations` line at top level,
    outside fenced code blocks."""
    return _scan(text)[0]


def unclosed_fence(text: str) -> bool:
    return _scan(text)[1]


def _scan(text: str) -> tuple[list[tuple[int, str]], bool]:
    found = []
    fence: str | None = None
    for index, line in enumerate(text.split("\n")):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence[0]) and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
            continue
        opening = _FENCE_OPEN.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence = opening.group(1)
            continue
        if line.rstrip() in SECTIONS:
            found.append((index, line.rstrip()))
    return found, fence is not None


def _check_no_nul(value: str, name: str, *, line: int | None = None) -> None:
    """NUL characters are refused: PostgreSQL text cannot hold them, and no report needs one."""
    if "\x00" in value:
        raise ReportInvalid("contains a NUL (\\x00) character", field=name, line=line)


def _check_proposal(proposal: str, *, line: int | None = None) -> str:
    _check_no_nul(proposal, "proposal", line=line)
    proposal = trim_blank_lines(normalise_newlines(proposal))
    if not proposal:
        raise ReportInvalid("the proposal is empty", field="proposal", line=line)
    return proposal


def _check_id(value: str, name: str, *, line: int | None = None, new: bool = False) -> str:
    """An id; a `new` one (the report's own, not a reference to a stored one) must
    also be readable back at GET /api/v1/proposals/{id} exactly as it is."""
    _check_no_nul(value, name, line=line)
    if not _ID.fullmatch(value):
        raise ReportInvalid("must be non-empty and contain no whitespace or control characters", field=name, line=line)
    if len(value) > MAX_ID_LENGTH:
        raise ReportInvalid(f"longer than {MAX_ID_LENGTH} characters", field=name, line=line)
    if new and not _URL_SAFE_ID.fullmatch(value):
        raise ReportInvalid(
            'must hold only ASCII letters, digits and - . _ ~ : @ + =, and not be "." or ".." '
            "(so that GET /api/v1/proposals/{id} can read it back as it is)",
            field=name,
            line=line,
        )
    return value


def _check_items(items: list, name: str) -> tuple[str, ...]:
    out = []
    for index, item in enumerate(items):
        _check_no_nul(item, f"{name}[{index}]")
        text = normalise_item(item)
        if not text:
            raise ReportInvalid("is empty", field=f"{name}[{index}]")
        out.append(text)
    return tuple(out)


# -------------------------------------------------------------------- markdown


def parse_markdown(raw: bytes | str) -> ReportRecord:
    """Parse the markdown form (see docs/fsar-report-format.md): the heading and the
    header lines, then the proposal and its sections, then the header's values."""
    text = decode(raw) if isinstance(raw, bytes) else normalise_newlines(raw)
    lines = text.split("\n")
    header, proposal_at, body_start = _markdown_header(lines)
    proposal, lists = _markdown_body(lines, body_start, proposal_at)
    severity_value, severity_line = header["severity"]
    severity = _markdown_severity(severity_value, line=severity_line)
    block_value, block_line = header["block_execution"]
    if block_value not in ("true", "false"):
        raise ReportInvalid(f"{block_value!r} is not `true` or `false`", field="block_execution", line=block_line)
    supersedes = None
    if "supersedes" in header:
        supersedes = _check_id(header["supersedes"][0], "supersedes", line=header["supersedes"][1])
    id_value, id_line = header["id"]
    timestamp_value, timestamp_line = header["timestamp"]
    return ReportRecord(
        id=_check_id(id_value, "id", line=id_line, new=True),
        timestamp=parse_timestamp(timestamp_value, line=timestamp_line),
        severity=severity,
        block_execution=block_value == "true",
        proposal=proposal,
        risks=tuple(lists.get("risks", ())),
        mitigations=tuple(lists.get("mitigations", ())),
        supersedes=supersedes,
    )


def _markdown_header(lines: list[str]) -> tuple[dict[str, tuple[str, int]], tuple[int, str], int]:
    """The heading, then `- key: value` lines up to `- proposal:`. Returns the header
    ({key: (value, line)}), the proposal line (its number and any text after the
    colon) and the index of the line after it. Every required key must be there."""
    n = len(lines)
    i = 0
    while i < n and _is_blank(lines[i]):
        i += 1
    if i >= n or lines[i].rstrip() != HEADING:
        raise ReportInvalid(f"the report must start with `{HEADING}`", field="heading", line=i + 1 if i < n else None)
    i += 1
    header: dict[str, tuple[str, int]] = {}
    proposal_at = None
    while i < n:
        line = lines[i]
        if _is_blank(line):
            i += 1
            continue
        match = _HEADER_LINE.match(line)
        if not match:
            raise ReportInvalid(f"expected a header line `- key: value`, got {line[:60]!r}", line=i + 1)
        key, value = match.group(1), match.group(2) or ""
        if key == "proposal":
            proposal_at = (i + 1, value)
            i += 1
            break
        if key not in HEADER_KEYS:
            raise ReportInvalid(f"unknown header `{key}`", field=key, line=i + 1)
        if key in header:
            raise ReportInvalid("appears twice", field=key, line=i + 1)
        header[key] = (value, i + 1)
        i += 1
    for name in REQUIRED:
        if name == "proposal":
            if proposal_at is None:
                raise ReportInvalid("missing (a `- proposal:` line, then the proposal)", field="proposal")
        elif name not in header:
            raise ReportInvalid("missing", field=name)
    return header, proposal_at, i


def _markdown_body(lines: list[str], start: int, proposal_at: tuple[int, str]) -> tuple[str, dict[str, list[str]]]:
    """The proposal (from the `- proposal:` line to the first top-level section
    heading outside a fence) and the bullet lists of the sections after it."""
    proposal_line, inline_proposal = proposal_at
    rest = "\n".join(lines[start:])
    rest_lines = rest.split("\n")
    # The proposal ends at its first top-level section heading outside a fence;
    # after that, top-level lines are only bullets and headings (bullet text is
    # indented, so a fence inside a bullet never hides a heading).
    first = top_level_section_lines(rest)[:1]
    sections = first + [
        (index, line.rstrip())
        for index, line in enumerate(rest_lines)
        if first and index > first[0][0] and line.rstrip() in SECTIONS
    ]
    body_end = sections[0][0] if sections else None
    body = "\n".join(rest_lines[:body_end] if body_end is not None else rest_lines)
    if inline_proposal:
        body = inline_proposal + "\n" + body
    proposal = _check_proposal(body, line=proposal_line)

    lists: dict[str, list[str]] = {}
    for number, (first_index, heading) in enumerate(sections):
        name = SECTIONS[heading]
        if name in lists:
            raise ReportInvalid(f"`{heading}` appears twice", field=name, line=start + first_index + 1)
        end = sections[number + 1][0] if number + 1 < len(sections) else len(rest_lines)
        lists[name] = _parse_bullets(rest_lines[first_index + 1 : end], name=name, first_line=start + first_index + 2)
    return proposal, lists


def _markdown_severity(value: str, *, line: int) -> int:
    if not re.fullmatch(r"[0-9]+", value):
        raise ReportInvalid(f"{value!r} is not a whole number (digits only)", field="severity", line=line)
    # Compared as text first: int() refuses more than 4,300 digits (a ValueError, not an answer).
    severity = int(value) if len(value.lstrip("0")) <= len(str(MAX_SEVERITY)) else MAX_SEVERITY + 1
    if severity > MAX_SEVERITY:
        raise ReportInvalid(f"above the maximum {MAX_SEVERITY}", field="severity", line=line)
    return severity


def _parse_bullets(lines: list[str], *, name: str, first_line: int) -> list[str]:
    items: list[list[str]] = []
    pending_blank = 0
    for offset, line in enumerate(lines):
        if _is_blank(line):
            pending_blank += 1
            continue
        if line.startswith("- ") or line.rstrip() == "-":
            items.append([line[2:]])
        elif line[0] in " \t" and items:
            items[-1].extend([""] * pending_blank)
            items[-1].append(line)
        else:
            raise ReportInvalid(f"expected a bullet `- …`, got {line[:60]!r}", field=name, line=first_line + offset)
        pending_blank = 0
    out = []
    for index, parts in enumerate(items):
        text = normalise_item(parts[0] + ("\n" + "\n".join(parts[1:]) if len(parts) > 1 else ""))
        _check_no_nul(text, f"{name}[{index}]")
        if not text:
            raise ReportInvalid("an empty bullet", field=f"{name}[{index}]")
        out.append(text)
    return out


def render_markdown(record: ReportRecord) -> str:
    """The markdown form of a record, in the seed report's layout."""
    check_markdown_expressible(record.proposal)
    lines = [
        HEADING,
        f"- id: {record.id}",
        f"- timestamp: {format_timestamp(record.timestamp)}",
        f"- severity: {record.severity}",
        f"- block_execution: {'true' if record.block_execution else 'false'}",
    ]
    if record.supersedes:
        lines.append(f"- supersedes: {record.supersedes}")
    lines += ["- proposal:", "", record.proposal, ""]
    for heading, items in (("## Risks", record.risks), ("## Mitigations", record.mitigations)):
        lines.append(heading)
        for item in items:
            first, *more = item.split("\n")
            lines.append(f"- {first}")
            lines += [("  " + line) if line else "" for line in more]
        lines.append("")
    return "\n".join(lines)


def check_markdown_expressible(proposal: str) -> None:
    found = top_level_section_lines(proposal)
    if found:
        index, heading = found[0]
        raise ReportInvalid(
            f"line {index + 1} of the proposal is a top-level `{heading}` outside a code fence, "
            "which the markdown form cannot express",
            field="proposal",
        )
    if unclosed_fence(proposal):
        raise ReportInvalid(
            "the proposal has a code fence that is never closed, which the markdown form cannot express",
            field="proposal",
        )


# ------------------------------------------------------------------------ JSON


class _JsonReport(BaseModel):
    """The JSON form's types, strictly: JSON strings, a JSON integer severity (6.0 is
    6; "6", 6.5 and true are not), a boolean block_execution, lists of strings, and
    no other field. What the values must say (ids, the proposal) is checked after."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    timestamp: str
    proposal: str
    severity: int = Field(ge=0, le=MAX_SEVERITY)
    block_execution: bool
    risks: list[str] = []
    mitigations: list[str] = []
    supersedes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_missing(cls, data):
        """A required field given as null is missing; null lists are empty."""
        dropped = {k: v for k, v in data.items() if not (v is None and (k in REQUIRED or k in _JSON_LISTS))}
        return dropped

    @field_validator("severity", mode="before")
    @classmethod
    def _integral_float(cls, value):
        if type(value) is float and value.is_integer():  # JSON has one number type: 6.0 is 6
            return int(value)
        return value

    @field_validator("timestamp")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        if not is_rfc3339(value):
            raise PydanticCustomError("report", DATETIME_RULE)
        return value

    @field_validator("risks", "mitigations")
    @classmethod
    def _items(cls, value: list[str], info: ValidationInfo) -> list[str]:
        try:
            return list(_check_items(value, info.field_name))
        except ReportInvalid as exc:
            raise PydanticCustomError("report_item", exc.message, {"field": exc.field}) from None


_JSON_LISTS = ("risks", "mitigations")
# The order the JSON form's rules are checked in, so that of several faults the first
# is reported: unknown fields, missing ones, the texts' types, then field by field.
_JSON_ORDER = ("id", "timestamp", "proposal", "severity", "block_execution", "risks", "mitigations", "supersedes")
_JSON_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be a JSON integer",
    "greater_than_equal": f"must be between 0 and {MAX_SEVERITY}",
    "less_than_equal": f"must be between 0 and {MAX_SEVERITY}",
    "bool_type": "must be true or false",
    "list_type": "must be a list of strings",
}


def _json_fault(errors: list[dict]) -> ReportInvalid:
    """The first of pydantic's errors, in the order the rules are checked, as a
    ReportInvalid naming the field (`risks[1]` for an item)."""

    def rank(error: dict) -> tuple:
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            return (0, name)
        if error["type"] == "missing":
            return (1, REQUIRED.index(name))
        if error["type"] == "string_type" and name in ("id", "timestamp", "proposal"):
            return (2, _JSON_ORDER.index(name))
        return (3, _JSON_ORDER.index(name))

    error = min(errors, key=rank)  # min() keeps the first of equals: pydantic lists items in order
    loc = error["loc"]
    name = str(loc[0]) if loc else "body"
    if error["type"] == "extra_forbidden":
        return ReportInvalid("unknown field", field=name)
    if error["type"] == "missing":
        return ReportInvalid("missing", field=name)
    if error["type"] == "report_item":
        return ReportInvalid(error["msg"], field=error["ctx"]["field"])
    if error["type"] == "report":
        return ReportInvalid(error["msg"], field=name)
    if name == "supersedes" and error["type"] == "string_type":
        return ReportInvalid("must be a string or null", field=name)
    if len(loc) > 1:  # an item of a list
        return ReportInvalid(_JSON_MESSAGES[error["type"]], field=f"{name}[{loc[1]}]")
    return ReportInvalid(_JSON_MESSAGES.get(error["type"], error["msg"]), field=name)


def parse_json(raw: bytes | str) -> ReportRecord:
    """Parse the JSON form; strict types (_JsonReport), then the values' rules."""
    text = decode(raw) if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ReportInvalid(f"not valid JSON ({exc.msg} at {where})", field="body") from None
    except RecursionError:
        raise ReportInvalid("not valid JSON (nested too deeply)", field="body") from None
    except ValueError:  # json.loads refuses integers of more than 4,300 digits this way
        raise ReportInvalid("not valid JSON (a number with too many digits)", field="body") from None
    if not isinstance(data, dict):
        raise ReportInvalid("must be a JSON object", field="body")
    if (where := lone_surrogate_path(data)) is not None:
        raise ReportInvalid(LONE_SURROGATE_MESSAGE, field=where)
    try:
        report = _JsonReport.model_validate(data)
    except ValidationError as exc:
        raise _json_fault(exc.errors()) from None
    proposal = _check_proposal(report.proposal)
    check_markdown_expressible(proposal)
    return ReportRecord(
        id=_check_id(report.id, "id", new=True),
        timestamp=parse_timestamp(report.timestamp.upper()),  # RFC 3339 allows `t` and `z`
        severity=report.severity,
        block_execution=report.block_execution,
        proposal=proposal,
        risks=tuple(report.risks),
        mitigations=tuple(report.mitigations),
        supersedes=_check_id(report.supersedes, "supersedes") if report.supersedes is not None else None,
    )


def parse_any(raw: bytes, *, content_type: str = "", filename: str = "") -> tuple[ReportRecord, str]:
    """Parse by content type or file name; returns (record, "markdown" | "json")."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" or filename.lower().endswith(".json"):
        return parse_json(raw), "json"
    if kind in ("text/markdown", "text/x-markdown", "text/plain") or filename.lower().endswith((".md", ".markdown")):
        return parse_markdown(raw), "markdown"
    if not kind and not filename:
        stripped = raw.lstrip()
        return (parse_json(raw), "json") if stripped.startswith(b"{") else (parse_markdown(raw), "markdown")
    raise ReportInvalid(
        f"unsupported content type {kind or filename!r}; send text/markdown or application/json", field="content_type"
    )


def proposal_folded(proposal: str) -> str:
    """The proposal with whitespace folded (case kept), for spotting resubmissions."""
    return " ".join(proposal.split())
