"""Admin for deployments: model versions (read-only, with history: their status
changes through the committee's cases and deployments.services) and the
model-version rules, whose every change is a policy change for the committee."""

from django.contrib import admin

from core.adminkit import ReadOnlyHistoryAdmin
from deployments.models import ModelRule, ModelVersion
from reviews.admin import GovernedAdmin, GovernedForm


class ModelRuleForm(GovernedForm):
    class Meta:
        model = ModelRule
        exclude: list[str] = []


@admin.register(ModelRule)
class ModelRuleAdmin(GovernedAdmin):
    form = ModelRuleForm
    list_display = ("priority", "name", "enabled", "family_glob", "action", "quorum", "approval_valid_hours", "pending")
    list_display_links = ("name",)
    list_filter = ("enabled", "action")
    ordering = ("priority", "id")
    history_list_display = ["action", "enabled", "priority"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("ai_model", "family", "status", "approved_until", "case", "registered_at")
    list_filter = ("status", "family")
    search_fields = ("ai_model", "family")
    list_select_related = ("case",)
    history_list_display = ["status", "status_reason"]
