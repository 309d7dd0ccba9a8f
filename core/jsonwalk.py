"""Walking a parsed JSON value, for checks the database needs before it stores one."""

from __future__ import annotations

from collections.abc import Iterator


def json_keys_and_scalars(value) -> Iterator:
    """Every key and every scalar in a parsed JSON value (dicts and lists opened),
    without recursion, so any depth the parser accepted is fine."""
    stack: list = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item
