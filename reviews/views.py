"""Pages for reviews: the operators' report upload, the gate's kill switch, a case."""

from __future__ import annotations

import time
from base64 import b32encode
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from core.roles import COMMITTEE, OPERATORS, has_role, role_required
from reviews import selectors, services
from reviews.forms import CommentForm, QueueFilterForm, ReasonForm, VoteForm
from reviews.models import Case
from reviews.receivers import LOGIN_AT
from reviews.rendering import queue_rows_html
from reviews.reports import MAX_REPORT_BYTES, ReportTooLarge


@role_required(OPERATORS)
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    from reviews.forms import ReportUploadForm

    outcomes: list[services.UploadOutcome] = []
    form = ReportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        for upload_file in form.cleaned_data["files"]:
            if upload_file.size > MAX_REPORT_BYTES:  # refused without reading it into memory
                too_large = str(ReportTooLarge(upload_file.size))
                outcomes.append(services.UploadOutcome(upload_file.name, "invalid", too_large))
                continue
            outcomes.append(services.ingest_file(name=upload_file.name, raw=upload_file.read(), user=request.user))
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
    history = selectors.gate_switch_history(state)
    return render(request, "reviews/gate.html", {"state": state, "form": form, "history": history})


RECENT_LOGIN_SECONDS = 15 * 60


def recent_login_and_two_factor_required(view):
    """Votes, recusals and revocations need a login within the last 15 minutes
    (otherwise the member signs in again and comes back to the case), and a
    TOTP-verified session from members who enrolled a device, or from everyone
    when two-factor is required (the operators' review setting, or the
    REVIEWS_REQUIRE_TOTP environment floor)."""

    @wraps(view)
    def wrapped(request: HttpRequest, case_id: int, *args, **kwargs) -> HttpResponse:
        back = reverse("reviews:case", args=[case_id])
        logged_in_at = request.session.get(LOGIN_AT, 0)
        if time.time() - logged_in_at > RECENT_LOGIN_SECONDS:
            messages.warning(request, "For a decision, please sign in again: your last sign-in is over 15 minutes old.")
            return redirect(f"{reverse('login')}?{urlencode({'next': back})}")
        has_device = selectors.totp_devices(request.user, confirmed=True).exists()
        if not has_device and selectors.totp_required():
            messages.warning(
                request,
                "Not recorded: committee decisions require two-factor authentication. "
                "Enrol an authenticator app below, then decide.",
            )
            return redirect(f"{reverse('reviews:two_factor')}?{urlencode({'next': back})}")
        if has_device and not request.user.is_verified():
            messages.warning(request, "Enter the code from your authenticator app to continue.")
            return redirect(f"{reverse('reviews:two_factor_verify')}?{urlencode({'next': back})}")
        return view(request, case_id, *args, **kwargs)

    return wrapped


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("reviews:queue")


@role_required(COMMITTEE)
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP authenticator: create an unconfirmed device, show its secret,
    and confirm it with a first code."""
    confirmed = selectors.totp_devices(request.user, confirmed=True).first()
    pending = selectors.totp_devices(request.user, confirmed=False).first()
    if request.method == "POST" and confirmed is None:
        if request.POST.get("action") == "start" and pending is None:
            pending = services.totp_enrol_start(user=request.user)
        elif request.POST.get("action") == "confirm" and pending is not None:
            device = services.totp_enrol_confirm(user=request.user, token=request.POST.get("token") or "")
            if device is not None:
                otp_login(request, device)
                messages.success(request, "Two-factor authentication is on for your account.")
                return redirect(_safe_next(request))
            messages.error(request, "That code did not match; check the time on your phone and try again.")
        return redirect(f"{reverse('reviews:two_factor')}?{urlencode({'next': _safe_next(request)})}")
    context = {
        "confirmed": confirmed,
        "pending": pending,
        "secret": b32encode(pending.bin_key).decode() if pending else "",
        "next": _safe_next(request),
        "required": selectors.totp_required(),
    }
    return render(request, "reviews/two_factor.html", context)


@role_required(COMMITTEE)
@require_http_methods(["GET", "POST"])
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        device = services.totp_verify(user=request.user, token=request.POST.get("token") or "")
        if device is not None:
            otp_login(request, device)
            return redirect(_safe_next(request))
        messages.error(request, "That code did not match.")
    return render(request, "reviews/two_factor_verify.html", {"next": _safe_next(request)})


@role_required(OPERATORS, COMMITTEE)
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    try:
        after = selectors.decode_queue_cursor(filters.get("after") or "")
    except ValueError:
        after = None
    rows, next_cursor = selectors.queue_page(
        user=request.user,
        kind=filters.get("kind") or "",
        show=filters.get("show") or "",
        min_severity=filters.get("min_severity"),
        after=after,
        now=timezone.now(),
    )
    params = {k: v for k, v in request.GET.items() if k != "after"}
    next_url = f"?{urlencode({**params, 'after': next_cursor})}" if next_cursor else None
    case_url = reverse("reviews:case", args=[0]).removesuffix("0/")
    context = {
        "form": form,
        "filters": filters,
        "rows": rows,
        "rows_html": queue_rows_html(rows, case_url=case_url),
        "next_url": next_url,
    }
    return render(request, "reviews/queue.html", context)


@role_required(OPERATORS, COMMITTEE)
@require_GET
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    return _case_page(request, case_id)


def _case_page(request: HttpRequest, case_id: int, *, vote_form: VoteForm | None = None) -> HttpResponse:
    """The case page; with `vote_form`, a refused vote shown again as it was written."""
    case = get_object_or_404(Case.objects.select_related("decided_by", "claimed_by"), pk=case_id)
    held_after = request.GET.get("held_after") or None
    if held_after is not None:
        if not held_after.isascii() or not held_after.isdigit() or int(held_after) >= 2**63:
            return HttpResponseBadRequest(
                "held_after: not a page of this case's held tasks", content_type="text/plain; charset=utf-8"
            )
        held_after = int(held_after)
    now = timezone.now()
    context = selectors.case_page(case=case, user=request.user, now=now, held_after=held_after)
    if context["why_not"] is None:  # a member who may vote on this version: when they first saw it
        services.case_view_record(case=case, member=request.user, now=now)
    context.update(
        {
            "vote_form": vote_form or VoteForm(initial={"version": case.version}),
            "comment_form": CommentForm(),
            "is_member": has_role(request.user, COMMITTEE),
        }
    )
    return render(request, "reviews/case.html", context)


def _act(request: HttpRequest, case_id: int, action, success: str) -> HttpResponse:
    get_object_or_404(Case.objects.only("pk"), pk=case_id)
    try:
        action()
    except services.ReviewError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("reviews:case", case_id=case_id)


def _invalid(request: HttpRequest, case_id: int, form) -> HttpResponse:
    problems = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
    messages.error(request, f"Not recorded: {problems}")
    return redirect("reviews:case", case_id=case_id)


@role_required(COMMITTEE)
@require_POST
@recent_login_and_two_factor_required
def vote(request: HttpRequest, case_id: int) -> HttpResponse:
    """A refused vote keeps what the member chose and wrote, with the error under its
    field; a vote the case no longer takes (decided, already voted) says why."""
    form = VoteForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        case = get_object_or_404(Case.objects.only("pk", "version"), pk=case_id)
        try:
            services.vote_cast(
                case_id=case_id,
                member=request.user,
                choice=data["choice"],
                rationale=data["rationale"],
                version=data["version"],
            )
        except services.ReviewError as exc:
            field = exc.extra.get("field")
            if field == "version":
                # The case changed since the page was read: show it as it is now, with the vote kept.
                messages.error(request, exc.message)
                form = VoteForm({**request.POST.dict(), "version": case.version})
            elif field in form.fields:
                form.add_error(field, f"Not recorded: {exc.message}.")
            else:
                messages.error(request, exc.message)
                return redirect("reviews:case", case_id=case_id)
        else:
            messages.success(request, "Your vote is recorded.")
            return redirect("reviews:case", case_id=case_id)
    return _case_page(request, case_id, vote_form=form)


def _act_with_reason(request: HttpRequest, case_id: int, action, success: str) -> HttpResponse:
    """_act for the forms that take only a reason: `action(reason)` once the form is valid."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, case_id, form)
    reason = form.cleaned_data["reason"]
    return _act(request, case_id, lambda: action(reason), success)


@role_required(COMMITTEE)
@require_POST
@recent_login_and_two_factor_required
def recuse(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act_with_reason(
        request,
        case_id,
        lambda reason: services.recuse(case_id=case_id, member=request.user, reason=reason),
        "You recused yourself.",
    )


@role_required(COMMITTEE)
@require_POST
@recent_login_and_two_factor_required
def revoke(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act_with_reason(
        request,
        case_id,
        lambda reason: services.case_revoke(case_id=case_id, by=request.user, rationale=reason),
        "The approval is revoked; the gate holds again.",
    )


@role_required(COMMITTEE)
@require_POST
@recent_login_and_two_factor_required
def escalate(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act_with_reason(
        request,
        case_id,
        lambda reason: services.case_escalate(case_id=case_id, by=request.user, reason=reason),
        "The advisory case now holds its tasks.",
    )


@role_required(COMMITTEE)
@require_POST
def comment(request: HttpRequest, case_id: int) -> HttpResponse:
    form = CommentForm(request.POST)
    if not form.is_valid():
        return _invalid(request, case_id, form)
    text = form.cleaned_data["text"]
    add = lambda: services.comment_add(case_id=case_id, author=request.user, text=text)  # noqa: E731
    return _act(request, case_id, add, "Comment added.")


@role_required(COMMITTEE)
@require_POST
def claim(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request, case_id, lambda: services.case_claim(case_id=case_id, member=request.user), "You are on this case."
    )


@role_required(COMMITTEE)
@require_POST
def release(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request, case_id, lambda: services.case_release(case_id=case_id, member=request.user), "Claim released."
    )


def _download(body: str, *, filename: str, fmt: str) -> HttpResponse:
    content_type = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


@role_required(OPERATORS, COMMITTEE)
@require_GET
def case_export(request: HttpRequest, case_id: int, fmt: str) -> HttpResponse:
    """The case's full record, with its chain entries and their hashes."""
    from reviews import export

    if fmt not in ("json", "csv"):
        raise Http404("No such export format.")
    case = get_object_or_404(Case.objects.select_related("decided_by"), pk=case_id)
    record = export.case_record(case, user=request.user)
    body = export.as_json(record) if fmt == "json" else export.as_csv([record])
    return _download(body, filename=f"fsar-case-{case.pk}", fmt=fmt)


@role_required(OPERATORS)
@require_GET
def export_range(request: HttpRequest) -> HttpResponse:
    """Operators export every case opened or decided in a date range, as JSON or CSV."""
    from reviews import export
    from reviews.forms import ExportRangeForm

    form = ExportRangeForm(request.GET or None)
    if request.GET and form.is_valid():
        start, end, fmt = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["format"]
        try:
            records = export.range_records(start, end, user=request.user)
        except export.RangeTooLarge as exc:
            form.add_error(None, str(exc))
        else:
            if fmt == "json":
                body = export.as_json(export.range_payload(start, end, records, now=timezone.now()))
            else:
                body = export.as_csv(records)
            return _download(body, filename=f"fsar-cases-{start}-to-{end}", fmt=fmt)
    return render(request, "reviews/export.html", {"form": form})


@role_required(OPERATORS, COMMITTEE)
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest) -> HttpResponse:
    """Turn the non-essential mails off (case opened, SLA reminders); the essential
    ones (decisions on your submissions, quorum alerts, a broken chain) always go."""
    from reviews.forms import NotificationSettingsForm

    current = selectors.notification_preference(request.user)
    form = NotificationSettingsForm(
        request.POST or None,
        initial={"case_opened": current.case_opened, "sla_reminders": current.sla_reminders},
    )
    if request.method == "POST" and form.is_valid():
        services.notification_preference_set(user=request.user, **form.cleaned_data)
        messages.success(request, "Your notification settings are saved.")
        return redirect("reviews:notifications")
    return render(request, "reviews/notifications.html", {"form": form, "email": request.user.email})


REPORT_FORMAT_DOC = "fsar-report-format.md"


@require_GET
def report_format(request: HttpRequest) -> HttpResponse:
    """The report format (docs/fsar-report-format.md, the AI side's reference) as a page,
    for anyone signed in: the upload page links here, not to a file in the repository."""
    from django.conf import settings

    from reviews.rendering import render_markdown

    text = (settings.BASE_DIR / "docs" / REPORT_FORMAT_DOC).read_text(encoding="utf-8")
    return render(request, "reviews/format.html", {"format_html": render_markdown(text)})
