"""Admin for reviews: policy rules (editable, validated, with history), reports,
cases, the gate state, the operators' review settings, callbacks (with retry).
State changes go through services."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django_otp.plugins.otp_totp.models import TOTPDevice
from simple_history.admin import SimpleHistoryAdmin

from core.adminkit import (
    ReadOnlyAdmin,
    ReadOnlyHistoryAdmin,
    ReasonActionForm,
    ReasonForm,
    ServiceSaveMixin,
    each_selected,
)
from core.roles import OPERATORS, has_role
from reviews import callback_urls, governed, services
from reviews.models import (
    CallbackDelivery,
    CallbackEndpoint,
    Case,
    Comment,
    GateState,
    PolicyChange,
    PolicyRule,
    Recusal,
    Report,
    ReviewSettings,
    Vote,
)
from tasks.models import ApiKey


class GovernedForm(forms.ModelForm):
    """A governed row's fields (reviews.governed), plus why (every change is a
    proposal the committee reads) and, for superusers only, an emergency switch
    that applies it at once. Subclass with `Meta.model` set."""

    change_reason = forms.CharField(
        label="Why this change",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The committee reads this before approving. At least a sentence.",
    )
    emergency = forms.BooleanField(
        required=False,
        label="Emergency: apply now",
        help_text="Superusers only. Takes effect at once; a retrospective committee case opens automatically.",
    )

    def clean(self):
        cleaned = super().clean()
        model = self._meta.model
        spec = governed.get(governed.target_of(model))
        candidate = model(**{k: v for k, v in cleaned.items() if k in {f.name for f in model._meta.fields}})
        candidate.pk = self.instance.pk or 0
        if spec is not None and spec.check is not None:
            try:
                spec.check(candidate)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return cleaned


class GovernedAdmin(SimpleHistoryAdmin):
    """Rows of a governed policy table (reviews.governed) are never saved from here
    directly: a save or delete becomes a policy change the committee must approve
    (reviews.services.policy_change_propose), or, for a superuser who ticks
    "emergency", an emergency change applied at once with a retrospective case
    (policy_change_emergency). Add "pending" to list_display to link a pending change."""

    form = GovernedForm

    @property
    def target(self) -> str:
        return governed.target_of(self.model)

    def _changelist(self) -> str:
        return reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist")

    def get_queryset(self, request):
        pending = PolicyChange.objects.filter(
            target=self.target, object_id=OuterRef("pk"), status=PolicyChange.Status.PENDING
        )
        return super().get_queryset(request).annotate(pending_case=Subquery(pending.values("case_id")[:1]))

    @admin.display(description="pending change")
    def pending(self, obj) -> str:
        case_id = getattr(obj, "pending_case", None)
        if not case_id:
            return "—"
        url = reverse("reviews:case", args=[case_id])
        return format_html('<a href="{}">case {} (awaiting approval)</a>', url, case_id)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if not request.user.is_superuser:
            form.base_fields.pop("emergency", None)
        return form

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletions are proposals, one row at a time
        return actions

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pending = PolicyChange.objects.filter(
            target=self.target, object_id=object_id, status=PolicyChange.Status.PENDING
        ).first()
        if pending is not None and request.method == "GET":
            messages.warning(
                request,
                f"A change to this {pending.target_label} is awaiting committee approval (case {pending.case_id}): "
                f"{', '.join(f'{k}: {a!r} → {b!r}' for k, (a, b) in pending.diff.items())}. "
                "Until it is approved, the values below apply.",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # Every field as submitted: the service diffs them against the row as it is now,
        # which also makes simple-history's "revert to this version" a proposal.
        fields = governed.get(self.target).fields
        values = {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}
        self._route(
            request,
            obj,
            operation="change" if change else "create",
            rule_id=obj.pk,
            values=values,
            reason=form.cleaned_data["change_reason"],
            emergency=form.cleaned_data.get("emergency", False),
        )

    def delete_model(self, request, obj):
        self._route(
            request,
            obj,
            operation="delete",
            rule_id=obj.pk,
            values=None,
            reason=f"Deletion of {obj} requested in the admin by {request.user}.",
            emergency=False,
        )
        self._after(request, obj)

    def _route(self, request, obj, *, operation, rule_id, values, reason, emergency) -> None:
        propose = services.policy_change_emergency if emergency else services.policy_change_propose
        try:
            obj._policy_change = propose(
                by=request.user, operation=operation, rule_id=rule_id, values=values, reason=reason, target=self.target
            )
        except services.ReviewError as exc:
            obj._policy_change = None
            obj._policy_error = exc.message

    def _after(self, request, obj):
        change = getattr(obj, "_policy_change", None)
        if change is None:
            self.message_user(request, f"Nothing changed: {getattr(obj, '_policy_error', '')}", messages.ERROR)
        elif change.emergency:
            self.message_user(
                request,
                f"Emergency change applied to {change.target_label} {change.rule_name!r}; "
                f"retrospective case {change.case_id} is open.",
                messages.WARNING,
            )
        else:
            self.message_user(
                request,
                f"Proposed as policy change {change.pk}: it applies once the committee approves case "
                f"{change.case_id}. Until then the {change.target_label} as it was keeps deciding.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._changelist())

    def response_add(self, request, obj, post_url_continue=None):
        return self._after(request, obj)

    def response_change(self, request, obj):
        return self._after(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        return HttpResponseRedirect(self._changelist())

    # The admin's own log would say "changed" or "deleted" when nothing was: the
    # policy change, its case and the audit chain are the record.
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None


class PolicyRuleForm(GovernedForm):
    class Meta:
        model = PolicyRule
        exclude: list[str] = []


@admin.register(PolicyRule)
class PolicyRuleAdmin(GovernedAdmin):
    """The gate's rules: every save or delete is a proposal for the committee (GovernedAdmin)."""

    form = PolicyRuleForm
    list_display = ("priority", "name", "enabled", "action", "quorum", "sla_hours", "approval_valid_hours", "pending")
    list_display_links = ("name",)
    list_filter = ("enabled", "action")
    ordering = ("priority", "id")
    history_list_display = ["action", "enabled", "priority"]


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "id", "operation", "target", "rule_name", "status", "emergency", "proposed_by", "proposed_at", "case",
    )  # fmt: skip
    list_filter = ("status", "operation", "emergency", "target")
    list_select_related = ("proposed_by", "case")


class HoneypotSeedForm(forms.Form):
    """An operator's known-bad report for the committee (services.honeypot_seed)."""

    text = forms.CharField(
        label="Report",
        widget=forms.Textarea(attrs={"rows": 16, "cols": 100}),
        help_text="An FSAR report, in markdown or JSON (docs/fsar-report-format.md), that the policy holds for "
        "the committee. Write it as the AI writes its reports: nothing in it should say it is a test.",
    )
    format = forms.ChoiceField(choices=Report.Format.choices, initial=Report.Format.MARKDOWN)
    shown_as = forms.ModelChoiceField(
        queryset=ApiKey.objects.order_by("name"),
        required=False,
        label="Appears sent by",
        empty_label="— uploaded by me —",
        help_text="The API key the report appears to come from, as a report sent through the API does. "
        "The AI behind that key never sees it.",
    )
    reason = forms.CharField(
        label="Why",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the report's history and on the audit chain (operators only).",
    )


@admin.register(Report)
class ReportAdmin(ReadOnlyHistoryAdmin):
    """Reports, read-only; operators seed honeypot reports here (and only here is one marked)."""

    list_display = (
        "report_id", "severity", "block_execution", "task_type", "gate_decision", "honeypot", "case", "received_at",
    )  # fmt: skip
    list_filter = ("gate_decision", "honeypot", "block_execution", "task_type", "raw_format")
    search_fields = ("=report_id",)
    list_select_related = ("case",)
    show_full_result_count = False
    change_list_template = "admin/reviews/report/change_list.html"

    def get_urls(self):
        from django.urls import path

        seed = path(
            "seed-honeypot/", self.admin_site.admin_view(self.seed_honeypot_view), name="reviews_report_seed_honeypot"
        )
        return [seed, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_seed_honeypot": has_role(request.user, OPERATORS), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def seed_honeypot_view(self, request: HttpRequest):
        from django.core.exceptions import PermissionDenied
        from django.template.response import TemplateResponse

        from reviews.reports import ReportInvalid, ReportTooLarge

        if not has_role(request.user, OPERATORS):
            raise PermissionDenied
        form = HoneypotSeedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                report = services.honeypot_seed(
                    raw=data["text"].encode(),
                    filename=f"honeypot.{'json' if data['format'] == Report.Format.JSON else 'md'}",
                    by=request.user,
                    reason=data["reason"],
                    shown_as=data["shown_as"],
                )
            except services.ReviewError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            except (ReportInvalid, ReportTooLarge) as exc:
                form.add_error("text", str(exc))
            else:
                self.message_user(
                    request,
                    f"Honeypot report {report.report_id} seeded: case {report.case_id} is in the committee's queue.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:reviews_report_change", args=[report.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Seed a honeypot report",
            "form": form,
        }
        return TemplateResponse(request, "admin/reviews/report/seed_honeypot.html", context)


@admin.register(Case)
class CaseAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "title", "kind", "status", "quorum", "rule_name", "opened_at", "due_at", "decided_at")
    list_filter = ("status", "kind", "rule_name")
    history_list_display = ["status"]


@admin.register(GateState)
class GateStateAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "paused", "reason", "changed_at", "changed_by")


class ReviewSettingsForm(forms.ModelForm):
    change_reason = forms.CharField(
        label="Why this change",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the settings' history and on the audit chain.",
    )

    class Meta:
        model = ReviewSettings
        fields = ["require_totp", "chair"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from reviews.selectors import committee_members

        # Only active committee members may chair (the service checks it again).
        self.fields["chair"].queryset = committee_members().order_by("username")
        self.fields["chair"].empty_label = "— none: every operator —"

    def clean(self):
        cleaned = super().clean()
        if {"require_totp", "chair"} & set(self.changed_data):
            return cleaned
        raise forms.ValidationError("Nothing changed: change a setting, or leave the page.")


@admin.register(ReviewSettings)
class ReviewSettingsAdmin(SimpleHistoryAdmin):
    """One row, edited by operators; a save goes through `services.review_settings_set`
    (history with the reason, an audit-chain entry). The REVIEWS_REQUIRE_TOTP
    environment variable is a floor this page cannot lower."""

    form = ReviewSettingsForm
    readonly_fields = ("reason", "changed_at", "changed_by")
    history_list_display = ["require_totp", "chair", "reason"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)
        # The one row (pk=1) is installed by migration reviews.0010 and after every migrate.
        return HttpResponseRedirect(reverse("admin:reviews_reviewsettings_change", args=[1]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET" and settings.REVIEWS_REQUIRE_TOTP:
            messages.warning(
                request,
                "REVIEWS_REQUIRE_TOTP is on in this server's environment: two-factor is required whatever this "
                "page says.",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        try:
            services.review_settings_set(
                by=request.user,
                require_totp=form.cleaned_data["require_totp"],
                chair=form.cleaned_data["chair"],
                reason=form.cleaned_data["change_reason"],
            )
        except services.ReviewError as exc:
            obj._settings_error = exc.message

    def response_change(self, request, obj):
        error = getattr(obj, "_settings_error", "")
        if error:
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
        else:
            self.message_user(request, "The review settings are saved.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reviews_reviewsettings_change", args=[obj.pk]))

    # The settings' history and the audit chain are the record (the admin's log would
    # say "changed" even when the service refused).
    def log_change(self, request, obj, message):
        return None


class CallbackEndpointForm(ReasonForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = CallbackEndpoint
        fields = ["api_key", "url", "enabled"]

    def clean_url(self) -> str:
        """Only public hosts (reviews/callback_urls.py), as the service checks."""
        url = self.cleaned_data["url"]
        try:
            callback_urls.check_url(url)
        except callback_urls.CallbackUrlRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(CallbackEndpoint)
class CallbackEndpointAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Callbacks through `services.callback_endpoint_set` (history with a reason, and
    the audit chain). The signing secret is generated by the service and shown once,
    when the endpoint is created or its secret rotated (the action); afterwards only
    its last 4 characters. Endpoints are disabled, not deleted."""

    form = CallbackEndpointForm
    action_form = ReasonActionForm
    list_display = ("api_key", "url", "enabled", "secret_hint")
    actions = ["rotate_secret"]
    service_errors = (services.ReviewError,)
    history_list_display = ["url", "enabled"]

    @admin.display(description="signing secret")
    def secret_hint(self, obj: CallbackEndpoint) -> str:
        return f"…{obj.secret[-4:]}" if obj.secret else "—"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["api_key", "url", "enabled", "change_reason"]
        return ["api_key", "url", "enabled", "secret_hint", "change_reason"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("api_key", "secret_hint")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # untick "enabled": the deliveries made to it stay answerable

    def save_through_service(self, request, obj, form, change) -> str:
        endpoint = services.callback_endpoint_set(
            api_key_id=obj.api_key_id,
            url=form.cleaned_data["url"],
            enabled=form.cleaned_data["enabled"],
            by=request.user,
            reason=form.cleaned_data["change_reason"],
        )
        obj.pk = endpoint.pk
        if not change:
            self.message_user(
                request,
                f"Callback endpoint created. Its signing secret, shown this once (give it to the receiver): "
                f"{endpoint.secret}",
                messages.WARNING,
            )
        return ""

    @admin.action(description="Rotate the signing secret (the new one is shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        reason = request.POST.get("change_reason", "")
        rotated = each_selected(
            self,
            request,
            queryset,
            lambda pk: services.callback_secret_rotate(endpoint_id=pk, by=request.user, reason=reason),
            errors=(services.ReviewError,),
            done="Rotated {n} signing secret(s).",
            refused="Not rotated",
        )
        for endpoint, secret in rotated:
            self.message_user(
                request,
                f"New signing secret for {endpoint}, shown this once (give it to the receiver): {secret}",
                messages.WARNING,
            )


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "task_id", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status", "type")
    actions = ["retry"]

    @admin.action(description="Retry the selected deliveries", permissions=["change"])
    def retry(self, request: HttpRequest, queryset):
        each_selected(
            self,
            request,
            queryset,
            lambda pk: services.callback_retry(delivery_id=pk, by=request.user),
            errors=(services.ReviewError,),
            done="Retrying {n} deliver(ies).",
            refused="Not retried",
        )


@admin.register(Vote)
class VoteAdmin(ReadOnlyHistoryAdmin):
    """Votes are the record of decisions: never edited, deleted or reverted here."""

    list_display = ("case", "case_version", "member", "choice", "created_at")
    list_filter = ("choice",)


@admin.register(Recusal)
class RecusalAdmin(ReadOnlyHistoryAdmin):
    list_display = ("case", "member", "created_at")


@admin.register(Comment)
class CommentAdmin(ReadOnlyHistoryAdmin):
    list_display = ("case", "author", "created_at")


# django-otp registers an admin that edits devices directly; ours only shows them and
# removes a lost one through the service (on the audit chain, with a reason).
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyAdmin):
    """Members enrol their own devices (the two-factor page); an operator with the
    permission removes a lost one (the member enrols again). The secret is never shown."""

    list_display = ("user", "name", "confirmed", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username",)
    fields = ("user", "name", "confirmed", "last_used_at", "created_at")
    action_form = ReasonActionForm
    actions = ["remove_devices"]

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.action(
        description="Remove the selected devices (a lost phone: the member enrols again)", permissions=["change"]
    )
    def remove_devices(self, request, queryset):
        reason = request.POST.get("change_reason", "")
        each_selected(
            self,
            request,
            queryset,
            lambda pk: services.totp_device_remove(device_id=pk, by=request.user, reason=reason),
            errors=(services.ReviewError,),
            done="Removed {n} device(s).",
            refused="Not removed",
        )
