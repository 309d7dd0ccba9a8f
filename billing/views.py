"""Customer billing pages and the operators' invoice-run page. Thin: a selector
or one service call each; who may see a customer's data is `customer_for_user`."""

from __future__ import annotations

import functools
from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from billing import invoicing, money, periods, selectors, stripe_client, stripe_push, webhooks
from billing.forms import PeriodForm
from billing.models import InvoiceRun
from billing.stripe_client import BillingError
from core import csvsafe
from core.roles import CUSTOMERS, OPERATORS, role_required


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_response(rows, filename: str) -> StreamingHttpResponse:
    writer = csvsafe.writer(_Echo())  # no cell a spreadsheet would run as a formula
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def bad_period(exc: periods.BadPeriod) -> HttpResponse:
    """A 400 naming the period, as plain text: the message quotes the input, which
    must never be served as HTML (a reflected-script hole)."""
    return HttpResponseBadRequest(f"period: {exc}", content_type="text/plain; charset=utf-8")


def with_period(view):
    """Parse `?period=YYYY-MM` (this month without one) for the view, which gets
    `period, start, end`; a bad period is a 400 naming it."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        period = request.GET.get("period") or periods.period_of(timezone.now())
        try:
            start, end = periods.parse_period(period)
        except periods.BadPeriod as exc:
            return bad_period(exc)
        return view(request, period, start, end, *args, **kwargs)

    return wrapped


@role_required(CUSTOMERS)
@with_period
def usage(request: HttpRequest, period: str, start: datetime, end: datetime) -> HttpResponse:
    customer = selectors.customer_for_user(request.user)
    context = {"customer": customer, "period": period, "stripe_configured": stripe_client.is_configured()}
    if customer is not None:
        rows = selectors.usage_by_offering(customer, start, end)
        context.update(
            rows=rows,
            total_minor=sum(r["amount_minor"] for r in rows),
            held=selectors.held_tasks(customer),
            open_invoices=selectors.invoices_for_customer(customer).filter(status="open"),
        )
    return render(request, "billing/usage.html", context)


@role_required(CUSTOMERS)
@with_period
def usage_csv(request: HttpRequest, period: str, start: datetime, end: datetime) -> HttpResponse:
    customer = selectors.customer_for_user(request.user)
    if customer is None:
        return _csv_response([selectors.CSV_HEADER], f"usage-{period}.csv")
    records = selectors.usage_records(customer, start, end)
    return _csv_response(selectors.usage_csv_rows(records), f"usage-{customer.customer_ref}-{period}.csv")


def bad_cursor(exc: selectors.BadCursor) -> HttpResponse:
    return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")


@role_required(CUSTOMERS)
def invoices(request: HttpRequest) -> HttpResponse:
    customer = selectors.customer_for_user(request.user)
    before = request.GET.get("before")
    rows, next_before = [], None
    if customer is not None:
        try:
            rows, next_before = selectors.invoice_page(customer, before=before)
        except selectors.BadCursor as exc:
            return bad_cursor(exc)
    context = {"customer": customer, "invoices": rows, "next_before": next_before, "paged": bool(before)}
    return render(request, "billing/invoices.html", context)


@role_required(CUSTOMERS)
def invoice_detail(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = selectors.invoice_for_customer(selectors.customer_for_user(request.user), invoice_id)
    return render(
        request,
        "billing/invoice.html",
        {
            "invoice": invoice,
            "lines": invoice.lines.select_related("offering"),
            "payments": invoice.payments.all(),
            "stripe_configured": stripe_client.is_configured(),
        },
    )


@role_required(CUSTOMERS)
def invoice_csv(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = selectors.invoice_for_customer(selectors.customer_for_user(request.user), invoice_id)
    return _csv_response(
        selectors.usage_csv_rows(selectors.invoice_usage_records(invoice)),
        f"usage-{invoice.customer.customer_ref}-{invoice.period}.csv",
    )


@role_required(CUSTOMERS)
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    customer = selectors.customer_for_user(request.user)
    if customer is None:
        messages.error(request, "Your login is not linked to a billing account yet.")
        return redirect("billing:usage")
    if not stripe_client.is_configured():  # how it is configured is the operators' business
        messages.error(request, "Online payment is not available yet; contact us to pay or to change how you pay.")
        return redirect("billing:usage")
    try:
        url = stripe_push.portal_url(
            customer_id=customer.pk, return_url=request.build_absolute_uri(reverse("billing:usage"))
        )
    except BillingError as exc:
        messages.error(request, exc.message)
        return redirect("billing:usage")
    return redirect(url)


@role_required(OPERATORS)
@require_http_methods(["GET", "POST"])
def runs(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.POST or None, initial={"period": periods.previous_period(timezone.now())})
    if request.method == "POST" and form.is_valid():
        try:
            run = invoicing.invoice_run_start(period=form.cleaned_data["period"], by=request.user, process_later=True)
        except BillingError as exc:
            form.add_error("period", exc.message)
        else:
            messages.success(request, f"Invoice run for {run.period} started.")
            return redirect("billing:run", run_id=run.pk)
    before = request.GET.get("before")
    try:
        rows, next_before = selectors.invoice_run_page(before=before)
    except selectors.BadCursor as exc:
        return bad_cursor(exc)
    return render(
        request,
        "billing/runs.html",
        {
            "form": form,
            "runs": rows,
            "next_before": next_before,
            "paged": bool(before),
            "stripe_configured": stripe_client.is_configured(),
        },
    )


@role_required(OPERATORS)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(InvoiceRun.objects.select_related("started_by"), pk=run_id)
    return render(
        request,
        "billing/run.html",
        {
            "run": run,
            "summary": selectors.run_summary(run),
            "items": selectors.run_items(run),
            "stripe_configured": stripe_client.is_configured(),
        },
    )


@role_required(OPERATORS)
@require_POST
def run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    get_object_or_404(InvoiceRun, pk=run_id)
    try:
        invoicing.invoice_run_retry(run_id=run_id, by=request.user, process_later=True)
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Retrying the failed customers.")
    return redirect("billing:run", run_id=run_id)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Verify, store once, acknowledge; a drain job applies stored events in order."""
    try:
        event, created = webhooks.receive(body=request.body, signature=request.headers.get("Stripe-Signature"))
    except webhooks.WebhookRefused as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status)
    if created:
        webhooks.schedule_drain()
    return JsonResponse({"received": event.stripe_id, "duplicate": not created})


@role_required(OPERATORS)
def roi(request: HttpRequest) -> HttpResponse:
    from billing import roi as roi_module

    current = periods.period_of(timezone.now())
    asked = request.GET.get("period")
    # Without a period: the latest month with billing (this month has none until it is invoiced).
    period = asked or selectors.latest_billed_period() or current
    try:
        months = roi_module.periods_ending(period, 12)
    except periods.BadPeriod as exc:
        return bad_period(exc)
    report = roi_module.roi_report(periods=months)
    rows = report.for_period(period)
    return render(
        request,
        "billing/roi.html",
        {
            "period": period,
            "latest_billed": not asked and period != current,
            "current_period": current,
            "rows": rows,
            "total": report.total(period),
            "chart": roi_module.chart(report),
            "currency": money.currency().upper(),
        },
    )
