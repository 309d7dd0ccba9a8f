"""Pages for audits: /audits/ (suites × model versions, with an upload form for
operators), a run's page and its evidence; the panels on committee cases."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from assurance import selectors, services
from assurance.forms import UploadForm
from assurance.models import run_id_of
from core.roles import COMMITTEE, OPERATORS, has_role, role_required
from deployments.models import ModelVersion, version_id_of


@role_required(OPERATORS, COMMITTEE)
@require_GET
def grid(request: HttpRequest) -> HttpResponse:
    context = selectors.grid(now=timezone.now())
    is_operator = has_role(request.user, OPERATORS)
    context.update({"is_operator": is_operator, "form": UploadForm() if is_operator else None})
    return render(request, "assurance/grid.html", context)


@role_required(OPERATORS)
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        messages.error(request, f"Not recorded: {problems}")
        return redirect("assurance:grid")
    suite = form.cleaned_data["suite"]
    upload_file = form.cleaned_data["report"]
    if upload_file.size > services.max_report_bytes():
        messages.error(request, f"Not recorded: the file is over the limit of {services.max_report_bytes()} bytes.")
        return redirect("assurance:grid")
    try:
        run, created = services.run_submit(
            suite=suite.name,
            ai_model=form.cleaned_data["ai_model"],
            fmt=suite.source,
            content=upload_file.read(),
            filename=upload_file.name or "",
            sender=services.Sender(user=request.user),
        )
    except services.AuditError as exc:
        messages.error(request, f"Not recorded: {exc.message}")
        return redirect("assurance:grid")
    verb = "Recorded" if created else "Already recorded"
    messages.success(
        request, f"{verb}: {suite.name} on {run.ai_model} is {run.effective_verdict} ({run.verdict_reason})."
    )
    return redirect("assurance:grid")


@role_required(OPERATORS, COMMITTEE)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run(run_id)
    if run is None:
        raise Http404("No such audit run.")
    return render(request, "assurance/run.html", {"run": run})


@role_required(OPERATORS, COMMITTEE)
@require_GET
def run_evidence(request: HttpRequest, run_id: int) -> HttpResponse:
    evidence = selectors.run_evidence(run_id)
    if evidence is None:
        raise Http404("No such evidence.")
    name = evidence.filename or f"audit-run-{run_id}.txt"
    safe = "".join(c for c in name if c.isalnum() or c in "._-")[:100] or f"audit-run-{run_id}"
    response = HttpResponse(bytes(evidence.content), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def run_case_panel(*, case, user) -> dict:
    run = selectors.run(run_id_of(case.subject_ref) or 0)
    return {"run": run}


def model_case_panel(*, case, user) -> dict:
    version = ModelVersion.objects.filter(pk=version_id_of(case.subject_ref)).first()
    if version is None:
        return {"version": None}
    now = timezone.now()
    rows = selectors.standings(version, selectors.suites_for(version))
    missing = [s.suite for s in rows if s.required and s.last_verdict != "pass"]
    return {
        "version": version,
        "rows": [{"s": s, "state": s.state(now)} for s in rows],
        "missing": missing,
    }
