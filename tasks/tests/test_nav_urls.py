"""The site layout's links (templates/base.html) are `{% nav_url %}`, reversed once per
process: the same HTML as `{% url %}` gave, whatever the role, the script prefix, the
URLconf or the app the request is in (fsar/templatetags/nav.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory, override_settings
from django.urls import path, resolve, set_script_prefix

from fsar.templatetags import nav

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _view(request):
    return HttpResponse("")


# A URLconf of this module, where `home` is elsewhere (to show the URLconf is in the key).
urlpatterns = [path("elsewhere/", _view, name="home"), path("logout/", _view, name="logout")]


def _with_url_tags(source: str) -> str:
    """A layout template as it was: every `{% nav_url %}` a `{% url %}`, without `load nav`."""
    source = source.replace("{% load static nav %}", "{% load static %}").replace("{% load nav %}", "")
    return source.replace("{% nav_url ", "{% url ")


@pytest.mark.parametrize(
    "roles",
    [
        {"is_operator": True},
        {"is_committee": True},
        {"is_customer": True},
        {"is_operator": True, "is_committee": True, "is_customer": True},
        {},
    ],
)
@pytest.mark.parametrize("prefix", ["/", "/fsar/"])
def test_the_nav_renders_what_the_url_tags_rendered(roles, prefix):
    source = (TEMPLATES / "fsar" / "_nav_apps.html").read_text()
    assert "{% url" not in source and "{% nav_url" in source
    request = RequestFactory().get("/tasks/metrics/")
    request.resolver_match = resolve("/tasks/metrics/")
    set_script_prefix(prefix)
    try:
        rendered = []
        for template in (Template(source), Template(_with_url_tags(source))):
            context = Context(roles)
            context.request = request  # what the tags read of a RequestContext
            rendered.append(template.render(context))
        new, old = rendered
    finally:
        set_script_prefix("/")
    assert new == old
    if roles.get("is_operator"):
        assert f'href="{prefix}tasks/metrics/"' in new


@pytest.mark.django_db
def test_every_page_layout_is_byte_for_byte_what_it_was(client, operator):
    """The whole layout of a page: rendered with the layout as it was (url tags), the same bytes."""
    base = (TEMPLATES / "base.html").read_text()
    assert "{% url" not in base
    client.force_login(operator)
    page = Template("{% extends layout %}{% block content %}<p>x</p>{% endblock %}")
    request = RequestFactory().get("/tasks/held/")
    request.user = operator
    request.resolver_match = resolve("/tasks/held/")
    context = {"user": operator, "is_operator": True, "request": request}
    csrf = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    rendered = []
    for layout in (base, _with_url_tags(base)):
        html = page.render(Context({**context, "layout": Template(layout), "csrf_token": "t"}))
        rendered.append(csrf.sub("", html))
    assert rendered[0] == rendered[1]
    assert '<a class="brand" href="/">FSAR</a>' in rendered[0]


def test_the_remembered_url_follows_the_urlconf_and_the_current_app():
    request = RequestFactory().get("/")
    assert nav.nav_url("home", request) == "/"
    with override_settings(ROOT_URLCONF=__name__):
        assert nav.nav_url("home", request) == "/elsewhere/"
    assert nav.nav_url("home", request) == "/"
    request.current_app = "admin"
    assert nav.nav_url("admin:index", request) == "/admin/"


def test_nav_url_takes_one_quoted_name_and_escapes_like_url():
    for bad in ("{% nav_url %}", "{% nav_url home %}", "{% nav_url 'a' 'b' %}"):
        with pytest.raises(TemplateSyntaxError):
            Template("{% load nav %}" + bad)
    assert Template("{% load nav %}{% nav_url 'logout' %}").render(Context()) == "/logout/"
    unescaped = Template("{% load nav %}{% autoescape off %}{% nav_url 'home' %}{% endautoescape %}")
    assert unescaped.render(Context()) == "/"
