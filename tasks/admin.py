"""Admin for tasks and API keys, with their history. Changes go through services."""

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from tasks import services
from tasks.formatting import duration
from tasks.forms import ApiKeyCreateForm
from tasks.models import ApiKey, ExecutionTask


@admin.register(ExecutionTask)
class ExecutionTaskAdmin(SimpleHistoryAdmin):
    # Short forms of the wide columns, so that the whole row fits a 1366 px screen.
    list_display = (
        "id",
        "external_id",
        "task_type",
        "ai_model",
        "status",
        "created",
        "duration",
        "gate_decision",
    )
    list_filter = ("status", "task_type", "source", "gate_decision")
    search_fields = ("=external_id", "=ai_model", "=customer_ref", "=proposal_ref")
    show_full_result_count = False
    list_per_page = 50
    ordering = ("-id",)
    actions = ["cancel_tasks"]
    history_list_display = ["status"]

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, task: ExecutionTask) -> str:
        return task.created_at.strftime("%Y-%m-%d %H:%M") if task.created_at else "—"

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, task: ExecutionTask) -> str:
        return duration(task.duration_ms)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks come from the AI side through the API

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the record of what ran is kept

    @admin.action(description="Cancel selected tasks that have not finished")
    def cancel_tasks(self, request: HttpRequest, queryset):
        actor = services.Actor(user=request.user)
        done, refused = 0, []
        for task_id in queryset.values_list("pk", flat=True):
            try:
                services.task_cancel(task_id=task_id, actor=actor, reason="cancelled by an operator in the admin")
                done += 1
            except services.TaskError as exc:
                refused.append(f"#{task_id}: {exc.message}")
        if done:
            self.message_user(request, f"Cancelled {done} task(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not cancelled: " + "; ".join(refused[:10]), messages.WARNING)


@admin.register(ApiKey)
class ApiKeyAdmin(SimpleHistoryAdmin):
    list_display = ("name", "prefix", "owner", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "owner__username")
    readonly_fields = ("prefix", "created_at", "revoked_at", "last_used_at")
    actions = ["revoke_keys"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "owner", "scopes", "expires_at"]
        return ["name", "prefix", "owner", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("name", "prefix", "owner", "scopes", "created_at", "revoked_at", "last_used_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: who submitted what must stay answerable

    def save_model(self, request, obj, form, change):
        if change:
            obj._history_user = request.user
            obj._change_reason = "changed in the admin"
            return super().save_model(request, obj, form, change)
        with transaction.atomic():
            created, secret = services.api_key_create(
                name=form.cleaned_data["name"],
                owner=form.cleaned_data["owner"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data.get("expires_at"),
                by=request.user,
            )
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"API key created. Copy it now, it is not shown again: {secret}",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        for key_id in queryset.values_list("pk", flat=True):
            services.api_key_revoke(api_key_id=key_id, by=request.user, reason="revoked in the admin")
        self.message_user(request, "Revoked.", messages.SUCCESS)
