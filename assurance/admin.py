"""Admin for assurance: audit suites (a change to a required suite, or one that
makes a suite required, is a policy change for the committee; other changes
apply at once) and runs (read-only, with history)."""

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect

from assurance import services
from assurance.models import AuditRun, AuditSuite
from reviews.admin import GovernedAdmin, GovernedForm, ReadOnlyHistoryAdmin


class AuditSuiteForm(GovernedForm):
    class Meta:
        model = AuditSuite
        exclude: list[str] = []


@admin.register(AuditSuite)
class AuditSuiteAdmin(GovernedAdmin):
    form = AuditSuiteForm
    list_display = ("name", "source", "required", "action", "schedule", "grace_minutes", "enabled", "pending")
    list_filter = ("source", "required", "enabled")
    history_list_display = ["required", "enabled", "schedule"]

    @staticmethod
    def _governed(obj, values: dict | None) -> bool:
        was_required = bool(obj.pk) and AuditSuite.objects.filter(pk=obj.pk, required=True).exists()
        return was_required or bool(values and values.get("required"))

    def save_model(self, request, obj, form, change):
        if self._governed(obj, form.cleaned_data):
            return super().save_model(request, obj, form, change)
        with transaction.atomic():
            obj._change_reason = form.cleaned_data["change_reason"]
            obj._history_user = request.user
            obj.save()
            services.suites_changed()
        obj._direct_save = True
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(obj, "_direct_save", False):
            self.message_user(request, "The suite is not required: the change applies at once.", messages.SUCCESS)
            return HttpResponseRedirect(self._changelist())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(obj, "_direct_save", False):
            self.message_user(request, "The suite is not required: the change applies at once.", messages.SUCCESS)
            return HttpResponseRedirect(self._changelist())
        return super().response_change(request, obj)

    def delete_model(self, request, obj):
        if self._governed(obj, None) or obj.runs.exists():
            return super().delete_model(request, obj)
        with transaction.atomic():
            obj.delete()
            services.suites_changed()
        return None


@admin.register(AuditRun)
class AuditRunAdmin(ReadOnlyHistoryAdmin):
    list_display = ("suite", "ai_model", "verdict", "decided_verdict", "received_at", "sender", "case")
    list_filter = ("verdict", "suite")
    search_fields = ("ai_model",)
    list_select_related = ("suite", "case")
    history_list_display = ["verdict", "decided_verdict"]
