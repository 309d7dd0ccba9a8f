"""`{% load durations %}`: `{{ value_ms|duration }}` (5 min 21 s), `{{ value_ms|exact_ms }}` (321,000.0 ms)."""

from django import template

from tasks import formatting

register = template.Library()
register.filter("duration", formatting.duration)
register.filter("exact_ms", formatting.exact_ms)
