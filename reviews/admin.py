"""Admin for reviews: policy rules (editable, validated, with history), reports,
cases, the gate state, callbacks (with retry). State changes go through services."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from reviews import policy, services
from reviews.models import (
    CallbackDelivery,
    CallbackEndpoint,
    Case,
    Comment,
    GateState,
    PolicyRule,
    Recusal,
    Report,
    Vote,
)


class PolicyRuleForm(forms.ModelForm):
    class Meta:
        model = PolicyRule
        exclude: list[str] = []

    def clean(self):
        cleaned = super().clean()
        candidate = PolicyRule(**{k: v for k, v in cleaned.items() if k in {f.name for f in PolicyRule._meta.fields}})
        candidate.pk = self.instance.pk or 0
        try:
            services.validate_rule(candidate)
        except policy.BrokenRule as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(PolicyRule)
class PolicyRuleAdmin(SimpleHistoryAdmin):
    form = PolicyRuleForm
    list_display = ("priority", "name", "enabled", "action", "quorum", "sla_hours", "approval_valid_hours")
    list_display_links = ("name",)
    list_filter = ("enabled", "action")
    ordering = ("priority", "id")
    history_list_display = ["action", "enabled", "priority"]


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Report)
class ReportAdmin(ReadOnlyHistoryAdmin):
    list_display = ("report_id", "severity", "block_execution", "task_type", "gate_decision", "case", "received_at")
    list_filter = ("gate_decision", "block_execution", "task_type", "raw_format")
    search_fields = ("=report_id",)
    list_select_related = ("case",)
    show_full_result_count = False


@admin.register(Case)
class CaseAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "title", "kind", "status", "quorum", "rule_name", "opened_at", "due_at", "decided_at")
    list_filter = ("status", "kind", "rule_name")
    history_list_display = ["status"]


@admin.register(GateState)
class GateStateAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "paused", "reason", "changed_at", "changed_by")


@admin.register(CallbackEndpoint)
class CallbackEndpointAdmin(SimpleHistoryAdmin):
    list_display = ("api_key", "url", "enabled")


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event_id", "type", "task_id", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status", "type")
    actions = ["retry"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected deliveries", permissions=["change"])
    def retry(self, request: HttpRequest, queryset):
        done, refused = 0, []
        for delivery_id in queryset.values_list("pk", flat=True):
            try:
                services.callback_retry(delivery_id=delivery_id, by=request.user)
                done += 1
            except services.ReviewError as exc:
                refused.append(f"#{delivery_id}: {exc.message}")
        if done:
            self.message_user(request, f"Retrying {done} deliver(ies).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not retried: " + "; ".join(refused[:10]), messages.WARNING)


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
