"""Pages for the leading indicators (docs/indicators.md, "Pages"): /indicators/
(sparklines per series with the reference band and thresholds, open alerts
first), a series' page, an alert's page (the series around its change point,
its history, acknowledge and resolve). Who may see and do what is decided in
indicators/views_data.py; writes go through indicators.services.alerts."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.roles import COMMITTEE, OPERATORS, role_required
from indicators import selectors, views_data
from indicators.forms import AlertActionForm
from indicators.models import AlertState, Period
from indicators.services import alerts as alert_services

ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved"}
SERIES_PAGE_DAYS = 90


@role_required(OPERATORS, COMMITTEE)
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    viewer = views_data.viewer_for(request.user)
    context = views_data.overview(viewer, now=timezone.now())
    context["viewer"] = viewer
    return render(request, "indicators/overview.html", context)


@role_required(OPERATORS, COMMITTEE)
@require_GET
def series_detail(request: HttpRequest, series_id: int) -> HttpResponse:
    viewer = views_data.viewer_for(request.user)
    series = views_data.series_for(viewer, series_id)
    if series is None:
        raise Http404("No such series.")
    now = timezone.now()
    points = selectors.points(series, period=Period.DAY, since=now - SERIES_PAGE_DAYS * views_data.DAY)
    alerts = views_data.visible_alerts(viewer, series.alerts.select_related("series").order_by("-fired_at", "-id")[:20])
    context = {
        "series": series,
        "subject": views_data.subject_of(series),
        "figure": views_data.figure(series, points, cid="series-chart"),
        "limits": views_data.limits(series),
        "alerts": alerts,
        "days": SERIES_PAGE_DAYS,
    }
    return render(request, "indicators/series.html", context)


def _alert_page(request: HttpRequest, viewer, alert, *, forms: dict | None = None, status: int = 200) -> HttpResponse:
    may_act = views_data.may_act_on_alert(viewer, alert)
    forms = forms or {}
    if may_act and alert.state == AlertState.FIRING:
        forms.setdefault("acknowledge", AlertActionForm(prefix="acknowledge"))
    if may_act and alert.is_open:
        forms.setdefault("resolve", AlertActionForm(prefix="resolve"))
    context = {
        "alert": alert,
        "about_reviewer": views_data.is_about_a_reviewer(alert),
        "charts": views_data.alert_charts(viewer, alert, now=timezone.now()),
        "events": selectors.alert_history(alert),
        "may_act": may_act,
        "show_case": views_data.shows_case(viewer, alert),
        "acknowledge_form": forms.get("acknowledge") if alert.state == AlertState.FIRING else None,
        "resolve_form": forms.get("resolve") if alert.is_open else None,
    }
    return render(request, "indicators/alert.html", context, status=status)


@role_required(OPERATORS, COMMITTEE)
@require_GET
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    viewer = views_data.viewer_for(request.user)
    alert = views_data.alert_for(viewer, alert_id)
    if alert is None:
        raise Http404("No such alert.")
    return _alert_page(request, viewer, alert)


@role_required(OPERATORS, COMMITTEE)
@require_POST
def alert_action(request: HttpRequest, alert_id: int, action: str) -> HttpResponse:
    """Acknowledge or resolve, with a reason. Someone who may see the alert but
    not act on it gets 403; someone who may not see it, 404."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    viewer = views_data.viewer_for(request.user)
    alert = views_data.alert_for(viewer, alert_id)
    if alert is None:
        raise Http404("No such alert.")
    if not views_data.may_act_on_alert(viewer, alert):
        raise PermissionDenied("Only operators, and the committee chair for alerts about a reviewer, may do this.")
    form = AlertActionForm(request.POST, prefix=action)
    if not form.is_valid():
        return _alert_page(request, viewer, alert, forms={action: form}, status=400)
    service = alert_services.alert_acknowledge if action == "acknowledge" else alert_services.alert_resolve
    try:
        service(alert_id=alert.pk, by=request.user, reason=form.cleaned_data["reason"])
    except alert_services.AlertRefused as exc:
        form.add_error("reason" if exc.extra.get("field") == "reason" else None, exc.message)
        messages.error(request, f"Not {ACTIONS[action]}: {exc.message}")
        alert.refresh_from_db()
        return _alert_page(request, viewer, alert, forms={action: form}, status=exc.status_code)
    messages.success(request, f"Alert {alert.pk} {ACTIONS[action]}: {alert.shown_title}")
    if request.POST.get("from") == "dashboard":
        return redirect("home")
    return redirect("indicators:alert", alert_id=alert.pk)
