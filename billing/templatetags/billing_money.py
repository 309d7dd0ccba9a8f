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


@register.filter
def micros_as_minor(amount: int | None) -> str:
    """Micro-units shown as money, rounded once for display."""
    amount = amount or 0
    sign = -1 if amount < 0 else 1
    return money.format_minor(sign * money.micros_to_minor(abs(amount)))


@register.filter
def roi_percent(bp: int | None) -> str:
    from billing.roi import format_bp

    return format_bp(bp)


@register.filter
def quantity(amount: int | None, unit: str = "") -> str:
    """A usage quantity in one format: 25084 → "25,084 tokens" (unit "1k_tokens"), 3 → "3 tasks"."""
    amount = amount or 0
    if unit == "1k_tokens":
        return f"{amount:,} token{'s' if amount != 1 else ''}"
    if unit == "task":
        return f"{amount:,} task{'s' if amount != 1 else ''}"
    return f"{amount:,}"
