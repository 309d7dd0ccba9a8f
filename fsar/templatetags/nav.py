"""`{% load nav %}`: `{% nav_url 'name' %}`, the `{% url 'name' %}` of a URL without
arguments (the site layout's links, templates/base.html), resolved once per process
rather than on every page: reversing costs ~30 µs a link, and the layout has up to 17.

The answer is what `{% url %}` gives (the same `reverse`, the same `current_app`, the
same escaping), remembered per URLconf, script prefix, current app and language: what
reversing a name without arguments depends on."""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.translation import get_language

register = template.Library()


@lru_cache(maxsize=512)
def _reversed(name: str, urlconf, prefix: str, current_app: str | None, language: str | None) -> str:
    # The key's urlconf, prefix and language are the ones in effect: `reverse` reads them itself.
    return reverse(name, current_app=current_app)


def _place(request) -> tuple[str, str, str | None]:
    """What reversing a name without arguments depends on, but the language: the URLconf,
    the script prefix and the current app, as `{% url %}` reads them for this request."""
    try:
        current_app = request.current_app
    except AttributeError:
        try:
            current_app = request.resolver_match.namespace
        except AttributeError:
            current_app = None
    return get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), current_app


def nav_url(name: str, request, place: tuple[str, str, str | None] | None = None) -> str:
    """`reverse(name)` as `{% url name %}` calls it for this request, remembered;
    `place`: this request's `_place`, when the caller has it."""
    return _reversed(name, *(place or _place(request)), get_language())


class NavURLNode(template.Node):
    def __init__(self, name: str) -> None:
        self.name = name

    def render(self, context) -> str:
        # The URLconf, script prefix and current app are read once per template rendered
        # (each a context-local read, ~5-10 µs; the layout has up to 17 links), not per
        # link; the language per link, as a {% language %} block may change it.
        place = context.render_context.get(NavURLNode)
        if place is None:
            place = context.render_context[NavURLNode] = _place(getattr(context, "request", None))
        url = nav_url(self.name, None, place)
        return conditional_escape(url) if context.autoescape else url


@register.tag("nav_url")
def do_nav_url(parser, token) -> NavURLNode:
    """`{% nav_url 'name' %}`: a quoted URL name, nothing else (no arguments, no `as`)."""
    bits = token.split_contents()
    if len(bits) != 2 or len(bits[1]) < 2 or bits[1][0] not in "'\"" or bits[1][-1] != bits[1][0]:
        raise template.TemplateSyntaxError("nav_url takes one quoted URL name: {% nav_url 'home' %}")
    return NavURLNode(bits[1][1:-1])
