"""Billing API: live ROI per service offering (operators' tools and the AI side read it)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from pydantic import ConfigDict

from billing import money, periods, roi
from tasks.auth import ApiKeyAuth

router = Router(tags=["billing"])


class RoiQuery(Schema):
    model_config = ConfigDict(extra="forbid")
    period: str | None = Field(
        None,
        description="YYYY-MM, from 0001-01 to 9998-12. Default: this month.",
        json_schema_extra={"pattern": periods.PERIOD_PATTERN},
    )


class RoiRowOut(Schema):
    offering: str
    tasks: int
    billed_minor: int
    refunds_minor: int
    revenue_minor: int
    ai_cost_micros: int
    margin_micros: int
    roi_bp: int | None


class RoiOut(Schema):
    period: str
    currency: str
    offerings: list[RoiRowOut]
    total: RoiRowOut


class ErrorOut(Schema):
    detail: str


@router.get("/roi", response={200: RoiOut, 401: ErrorOut, 403: ErrorOut, 422: ErrorOut}, auth=ApiKeyAuth("read"))
def roi_for_period(request: HttpRequest, filters: Query[RoiQuery]) -> dict:
    """Revenue (paid invoice lines less refunds, minor units), AI cost of the billed
    tasks (micro-units), margin (micro-units) and ROI (basis points; null without
    cost) per service offering for `period` (YYYY-MM, default: this month)."""
    from django.utils import timezone

    period = periods.period_of(timezone.now()) if filters.period is None else filters.period
    try:
        periods.parse_period(period)
    except periods.BadPeriod as exc:
        raise HttpError(422, f"period: {exc}") from exc
    report = roi.roi_report(periods=[period])
    return {
        "period": period,
        "currency": money.currency(),
        "offerings": [r.as_dict() for r in report.for_period(period)],
        "total": report.total(period).as_dict(),
    }
