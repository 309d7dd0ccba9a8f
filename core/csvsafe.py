"""CSV downloads a spreadsheet cannot run.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return before
one) is a formula to Excel, LibreOffice and Google Sheets: `=HYPERLINK(...)` in
a task's external id, an AI model name or a report's proposal would run, or
leak data, on the operator's or customer's machine that opens the download.
Every CSV FSAR serves goes through `writer`, which prefixes such text cells with
`'` (shown as text, the value otherwise intact), the rule OWASP gives and
defusedcsv applies; the full-width forms (＝ ＋ － ＠) that some spreadsheets
also read as formulas are treated the same. Numbers are written as they are, so
a negative amount stays a number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    """`value`, with a text cell that a spreadsheet would read as a formula turned into text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer's interface, every row's text cells made safe first."""

    def __init__(self, out, **options) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, **options) -> SafeWriter:
    return SafeWriter(out, **options)
