"""Report markdown rendered for people, sanitised: raw HTML is escaped by the
markdown renderer and nh3 strips what is left that could run (scripts, event
handler attributes, `javascript:` links), so a hostile report renders inert."""

from __future__ import annotations

import difflib

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")

TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "img",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}, "code": {"class"}}


def render_markdown(text: str) -> SafeString:
    html = _md.render(text or "")
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above


def proposal_diff(before: str, after: str) -> str:
    """A unified diff of two proposals, for a revision's page (rendered as text)."""
    return "\n".join(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), fromfile="before", tofile="revision", lineterm="", n=2
        )
    )
