"""Walking a parsed JSON value, for checks the database needs before it stores one."""

from __future__ import annotations

import re
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


# A code point in U+D800–U+DFFF on its own: JSON's "\ud800" escape decodes to one
# (a valid pair of escapes decodes to one character above U+FFFF instead). It is not
# Unicode text: UTF-8 cannot encode it, so hashing, SQLite and PostgreSQL all fail on it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON text that may hold one: a \uD8xx–\uDFxx escape (raw surrogates are not UTF-8).
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE_MESSAGE = (
    "must not contain a lone surrogate (a \\ud800–\\udfff escape without its pair): not Unicode text"
)


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def lone_surrogate_path(value, root: str = "") -> str | None:
    """Where the first string holding a lone surrogate is in a parsed JSON value, as
    `root.a.b[2]` (for a key holding one, the object holding that key), or None."""
    stack: list = [(value, root)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if has_lone_surrogate(key):
                    return path or "body"
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
        elif isinstance(item, str) and has_lone_surrogate(item):
            return path or "body"
    return None
