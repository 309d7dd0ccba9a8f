"""HTML built in Python for the committee's pages.

Report markdown rendered for people, sanitised: raw HTML is escaped by the
markdown renderer and nh3 strips what is left that could run (scripts, event
handler attributes, `javascript:` links), so a hostile report renders inert.
Images are not rendered at all, only named ("[image: alt — not loaded: URL]"):
a report's image could be a tracking pixel telling its author who read it and
when, or a GET to one of our own pages made with the reader's session. The
Content-Security-Policy (`img-src 'self' data:`) would block a remote one too;
this makes sure it is not even requested.

The queue's rows, formatted here rather than by the template engine: the
engine spent about three quarters of the page's rendering time resolving and
localising the same dozen variables in each of the 25 rows."""

from __future__ import annotations

import difflib

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


def _image_as_text(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    return escape(f"[image: {alt or 'no description'} — not loaded: {token.attrGet('src') or ''}]")


_md.add_render_rule("image", _image_as_text)

TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}}


def render_markdown(text: str) -> SafeString:
    html = _md.render(text or "")
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # sanitised by nh3 just above


def proposal_diff(before: str, after: str) -> str:
    """A unified diff of two proposals, for a revision's page (rendered as text)."""
    return "\n".join(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), fromfile="before", tofile="revision", lineterm="", n=2
        )
    )


_QUEUE_ROW = (
    '    <tr data-case="{pk}"{row_class}>\n'
    '      <th scope="row"><a href="{case_url}{pk}/">#{pk} {title}</a><br>'
    '<span class="muted">{kind} · {status}{short}</span></th>\n'
    '      <td class="num">{severity}</td>\n'
    '      <td class="quorum">{tally}</td>\n'
    "      <td>{claimer}</td>\n"
    "      <td>{due}</td>\n"
    "      <td>{voted}</td>\n"
    "    </tr>\n"
)
_MUTED_DASH = '<span class="muted">—</span>'
_SHORT = ' · <span class="bad">cannot reach quorum</span>'


def _you(row) -> str:
    """The "You" column: a vote cast, none yet, or why this person has none to cast."""
    if row.i_voted:
        return "voted"
    if row.submitted:
        return '<span class="muted">can\'t vote (submitted)</span>'
    if not row.can_vote:
        return _MUTED_DASH  # operators read the queue; they do not vote
    return '<span class="muted">not yet</span>'


def queue_rows_html(rows, *, case_url: str) -> SafeString:
    """The queue table's rows (`selectors.queue_page` rows), every text escaped;
    `case_url` is the case page's URL without the id (reversed once per page)."""
    case_url = escape(case_url)
    parts = []
    for c in rows:
        due = escape(c.due_text)
        parts.append(
            _QUEUE_ROW.format(
                pk=int(c.pk),
                row_class=' class="regressed"' if c.overdue else "",
                case_url=case_url,
                title=escape(c.title),
                kind=escape(c.kind_label),
                status=escape(c.status_label),
                short=_SHORT if c.short_of_members else "",
                severity=int(c.severity) if c.kind == "report" else _MUTED_DASH,
                tally=(
                    f"{int(c.votes_cast)} cast · {int(c.quorum)} needed"
                    if c.blind
                    else f"{int(c.approvals)} of {int(c.quorum)}"
                ),
                claimer=escape(c.claimer) if c.claim_active else _MUTED_DASH,
                due=f'<span class="bad">overdue by {due}</span>' if c.overdue else f"in {due}",
                voted=_you(c),
            )
        )
    return mark_safe("".join(parts))  # every value above is escaped or an int
