"""Pages for model versions: /models/ (families and their versions) and a version's page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.roles import COMMITTEE, OPERATORS, has_role, role_required
from deployments import selectors, services
from deployments.forms import RetireForm, VersionFilterForm
from deployments.models import ModelVersion


@role_required(OPERATORS, COMMITTEE)
@require_GET
def models_list(request: HttpRequest) -> HttpResponse:
    form = VersionFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = selectors.models_page(
        family=filters.get("family") or "",
        status=filters.get("status") or "",
        before_id=filters.get("before"),
        now=timezone.now(),
    )
    next_url = None
    if page["next_before"]:
        params = {k: v for k, v in request.GET.items() if k != "before"}
        next_url = f"?{urlencode({**params, 'before': page['next_before']})}"
    return render(request, "deployments/models.html", {"form": form, "next_url": next_url, **page})


@role_required(OPERATORS, COMMITTEE)
@require_GET
def version_detail(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("case", "registered_by_key"), pk=version_id)
    context = selectors.version_page(version, now=timezone.now())
    context.update({"retire_form": RetireForm(), "is_operator": has_role(request.user, OPERATORS)})
    return render(request, "deployments/version.html", context)


@role_required(OPERATORS)
@require_POST
def version_retire(request: HttpRequest, version_id: int) -> HttpResponse:
    get_object_or_404(ModelVersion.objects.only("pk"), pk=version_id)
    form = RetireForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        messages.error(request, f"Not retired: {problems}")
    else:
        try:
            version = services.version_retire(
                version_id=version_id, by=request.user, reason=form.cleaned_data["reason"]
            )
        except services.ModelError as exc:
            messages.error(request, f"Not retired: {exc.message}")
        else:
            messages.success(request, f"{version.ai_model} is retired: new tasks on it are denied.")
    return redirect("deployments:version", version_id=version_id)
