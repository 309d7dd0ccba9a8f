"""Pages for reviews: the operators' report upload, the gate's kill switch, a case."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from fsar.roles import COMMITTEE, OPERATORS, role_required
from reviews import policy, selectors, services
from reviews.models import Case
from reviews.reports import ReportInvalid, ReportTooLarge


@dataclass
class UploadOutcome:
    filename: str
    outcome: str  # ingested | unchanged | conflicting | invalid | unavailable
    detail: str
    report: object = None


def ingest_file(*, name: str, raw: bytes, user=None, api_key=None) -> UploadOutcome:
    """One file through report_ingest, every failure turned into a readable outcome
    (shared by the upload form and `manage.py ingest_reports`)."""
    try:
        result = services.report_ingest(raw=raw, filename=name, user=user, api_key=api_key)
    except (ReportInvalid, ReportTooLarge) as exc:
        return UploadOutcome(name, "invalid", str(exc))
    except services.ReportConflict as exc:
        return UploadOutcome(name, "conflicting", exc.message)
    except services.ReviewError as exc:
        return UploadOutcome(name, "invalid", exc.message)
    except (policy.BrokenRule, DatabaseError) as exc:
        return UploadOutcome(name, "unavailable", f"the gate cannot decide right now: {exc}")
    report = result.report
    return UploadOutcome(name, "ingested" if result.created else "unchanged", report.gate_reason, report)


@role_required(OPERATORS)
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    from reviews.forms import ReportUploadForm

    outcomes: list[UploadOutcome] = []
    form = ReportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        for upload_file in form.cleaned_data["files"]:
            outcomes.append(ingest_file(name=upload_file.name, raw=upload_file.read(), user=request.user))
        form = ReportUploadForm()
    return render(request, "reviews/upload.html", {"form": form, "outcomes": outcomes})


@role_required(OPERATORS, COMMITTEE)
@require_http_methods(["GET", "POST"])
def gate(request: HttpRequest) -> HttpResponse:
    from reviews.forms import GatePauseForm

    state = selectors.gate_state()
    form = GatePauseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        change = services.gate_resume if state.paused else services.gate_pause
        try:
            change(by=request.user, reason=form.cleaned_data["reason"])
        except services.NotAllowed as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "The gate is resumed." if state.paused else "The gate is paused.")
        return redirect("reviews:gate")
    history = state.history.select_related("history_user").order_by("-history_date")[:20]
    return render(request, "reviews/gate.html", {"state": state, "form": form, "history": history})


@role_required(OPERATORS, COMMITTEE)
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case.objects.select_related("decided_by"), pk=case_id)
    context = {
        "case": case,
        "reports": case.reports.order_by("id"),
        "held_tasks": selectors.held_tasks_for_case(case.pk)[:100],
        "history": case.history.select_related("history_user").order_by("-history_date")[:50],
    }
    return render(request, "reviews/case.html", context)
