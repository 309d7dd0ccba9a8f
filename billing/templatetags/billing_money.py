from django import template

from billing import money

register = template.Library()


@register.filter
def minor(amount: int | None, code: str | None = None) -> str:
    """Minor units as money text: 12345 → "123.45 USD"."""
    return money.format_minor(amount or 0, code)


@register.filter
def micros(amount: int | None) -> str:
    return money.format_micros(amount or 0)
