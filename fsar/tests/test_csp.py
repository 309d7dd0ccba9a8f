"""Every response carries the Content-Security-Policy, and no template has what
it would block (inline script without a nonce, inline style, event-handler
attributes): the browser walk is test_browser_csp.py."""

import re
from pathlib import Path

import pytest

from reviews.rendering import render_markdown

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/tasks", "/no-such-page/"])
def test_every_response_carries_the_policy(client, path):
    csp = policy(client.get(path))
    assert csp["default-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["script-src"] == ["'self'"]  # a nonce only on pages that use one
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]


def test_a_page_that_uses_the_nonce_gets_it_in_its_policy(rf):
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse
    from django.template import engines

    template = engines["django"].from_string('<script nonce="{{ request.csp_nonce }}">1</script>')
    middleware = CSPMiddleware(lambda request: HttpResponse(template.render({"request": request})))
    request = rf.get("/")
    response = middleware(request)
    nonce = re.search(rb'nonce="([^"]+)"', response.content).group(1).decode()
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]


APPS = ("templates", "fsar", "tasks", "reviews", "billing", "audit")
TEMPLATES = sorted(p for d in APPS for p in (ROOT / d).rglob("*.html"))
INLINE = [
    (re.compile(r'<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*type="application/json")[^>]*>', re.I),
     "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event-handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]  # fmt: skip


def test_no_template_has_what_the_policy_blocks():
    assert len(TEMPLATES) > 20
    found = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {what}"
        for path in TEMPLATES
        for text in [path.read_text()]
        for pattern, what in INLINE
        for m in pattern.finditer(text)
    ]
    assert found == []


def test_the_scan_would_find_each_kind():
    for sample in ('<script>alert(1)</script>', "<style>p{}</style>", '<p style="color:red">', '<a onclick="x()">',
                   '<a href="javascript:x()">'):  # fmt: skip
        assert any(p.search(sample) for p, _ in INLINE), sample
    assert not any(p.search('<script src="/static/a.js" defer></script>') for p, _ in INLINE)


def test_a_reports_images_are_named_never_loaded():
    html = render_markdown(
        "see ![the plan](https://tracker.example/p.png) and ![](/billing/portal/) "
        "[![badge](https://b.example/b.svg)](https://ok.example/) <img src=https://x.example/a.png>"
    )
    assert "<img" not in html
    assert "[image: the plan — not loaded: https://tracker.example/p.png]" in html
    assert "[image: no description — not loaded: /billing/portal/]" in html
    assert '<a href="https://ok.example/"' in html  # links stay links
