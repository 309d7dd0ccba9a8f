"""Pages for model versions: /models/ (families and their versions) and a version's page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.roles import COMMITTEE, OPERATORS, has_role, role_required
from deployments import drills, rollouts, routing, selectors, services
from deployments.forms import ReasonForm, RetireForm, RolloutForm, VersionFilterForm
from deployments.models import ModelVersion, Rollout


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
    families = selectors.families_overview([v.family for v in page["versions"]], now=timezone.now())
    return render(
        request,
        "deployments/models.html",
        {
            "form": form,
            "next_url": next_url,
            "families": families,
            "rollout_form": RolloutForm(),
            "is_operator": has_role(request.user, OPERATORS),
            **page,
        },
    )


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


def _problems(form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@role_required(OPERATORS, COMMITTEE)
@require_GET
def rollout_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("stable", "candidate", "created_by"), pk=rollout_id)
    context = selectors.rollout_page(rollout, now=timezone.now())
    context.update({"reason_form": ReasonForm(), "is_operator": has_role(request.user, OPERATORS)})
    key = request.GET.get("key", "")[:200].replace("\x00", "")
    if key:
        context["route_key"], context["route"] = key, routing.route(rollout.family, key)
    return render(request, "deployments/rollout.html", context)


# Who may do what to a rollout: the committee may roll back (read-only otherwise).
ACTIONS = {
    "promote": (rollouts.rollout_promote, (OPERATORS,), "promoted"),
    "pause": (rollouts.rollout_pause, (OPERATORS,), "paused"),
    "resume": (rollouts.rollout_resume, (OPERATORS,), "resumed"),
    "rollback": (rollouts.rollout_rollback, (OPERATORS, COMMITTEE), "rolled back: the candidate gets no traffic"),
}


@role_required(OPERATORS, COMMITTEE)
@require_POST
def rollout_action(request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
    get_object_or_404(Rollout.objects.only("pk"), pk=rollout_id)
    if action not in ACTIONS:
        raise Http404("no such action")
    service, roles, done = ACTIONS[action]
    if not has_role(request.user, *roles):
        raise Http404("not for this role")
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            f"Not {action}d: {_problems(form)}" if action != "rollback" else f"Not rolled back: {_problems(form)}",
        )
    else:
        try:
            rollout = service(rollout_id=rollout_id, by=request.user, reason=form.cleaned_data["reason"])
        except services.ModelError as exc:
            messages.error(request, f"Refused: {exc.message}")
        else:
            messages.success(request, f"Rollout {rollout.pk} {done} (candidate at {rollout.weight}%).")
    return redirect("deployments:rollout", rollout_id=rollout_id)


@role_required(OPERATORS)
@require_POST
def rollout_new(request: HttpRequest) -> HttpResponse:
    form = RolloutForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"No rollout started: {_problems(form)}")
        return redirect("deployments:models")
    data = form.cleaned_data
    try:
        steps = rollouts.parse_weights(data["weights"], min_minutes=data["min_minutes"], min_tasks=data["min_tasks"])
        rollout = rollouts.rollout_create(
            candidate_id=data["candidate"],
            steps=steps,
            reason=data["reason"],
            by=request.user,
            auto_promote=data["auto_promote"],
        )
    except services.ModelError as exc:
        messages.error(request, f"No rollout started: {exc.message}")
        return redirect("deployments:models")
    messages.success(request, f"Rollout {rollout.pk} started: {rollout.candidate.ai_model} at {rollout.weight}%.")
    return redirect("deployments:rollout", rollout_id=rollout.pk)


@role_required(OPERATORS)
@require_POST
def drill_now(request: HttpRequest, family: str) -> HttpResponse:
    if not ModelVersion.objects.filter(family=family).exists():
        raise Http404("no such family")
    try:
        drill = drills.drill_run(family=family, by=str(request.user))
    except ValueError as exc:
        messages.error(request, f"No drill: {exc}")
    else:
        tone = messages.success if drill.state in ("pass", "running") else messages.error
        tone(request, f"Drill {drill.pk} of {drill.target.ai_model}: {drill.state}. {drill.reason}")
    return redirect(f"{reverse('deployments:models')}?family={family}")
