"""Admin for tasks and API keys, with their history. Changes go through services:
cancelling tasks, creating and revoking keys, changing a key's expiry (history
and an audit-chain entry, as it can bring an expired key back)."""

from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from core.adminkit import ReadOnlyHistoryAdmin, ServiceSaveMixin, each_selected
from tasks import services
from tasks.formatting import duration
from tasks.forms import ApiKeyChangeForm, ApiKeyCreateForm
from tasks.models import ApiKey, ExecutionTask


@admin.register(ExecutionTask)
class ExecutionTaskAdmin(ReadOnlyHistoryAdmin):
    """Tasks come from the AI side through the API, and the record of what ran is kept."""

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
    # Exact, case-sensitive matches, each served by its index: the admin's "=" prefix is
    # iexact, UPPER(column) = UPPER(term) on PostgreSQL, which no index serves (a scan of
    # every task per search). The ids are case-sensitive everywhere else too (the API's).
    search_fields = ("external_id__exact", "ai_model__exact", "customer_ref__exact", "proposal_ref__exact")
    search_help_text = "An exact external id, model, customer or proposal id (case-sensitive)."
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

    @admin.action(description="Cancel selected tasks that have not finished")
    def cancel_tasks(self, request, queryset):
        actor = services.Actor(user=request.user)
        each_selected(
            self,
            request,
            queryset,
            lambda pk: services.task_cancel(task_id=pk, actor=actor, reason="cancelled by an operator in the admin"),
            errors=(services.TaskError,),
            done="Cancelled {n} task(s).",
            refused="Not cancelled",
        )


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """A new key through `api_key_create` (its secret shown once); on a key only
    the expiry changes, through `api_key_expiry_set` with a reason (history and the
    chain); keys are revoked, never deleted."""

    list_display = ("name", "prefix", "owner", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "owner__username")
    actions = ["revoke_keys"]
    service_errors = (services.ApiKeyError,)
    history_list_display = ["expires_at", "revoked_at"]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = ApiKeyCreateForm if obj is None else ApiKeyChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "owner", "scopes", "expires_at"]
        return [
            "name", "prefix", "owner", "scopes", "created_at", "expires_at", "change_reason", "revoked_at",
            "last_used_at",
        ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("name", "prefix", "owner", "scopes", "created_at", "revoked_at", "last_used_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: who submitted what must stay answerable

    def save_through_service(self, request, obj, form, change) -> str:
        if change:
            services.api_key_expiry_set(
                api_key_id=obj.pk,
                expires_at=form.cleaned_data.get("expires_at"),
                by=request.user,
                reason=form.cleaned_data["change_reason"],
            )
            return ""
        created, secret = services.api_key_create(
            name=form.cleaned_data["name"],
            owner=form.cleaned_data["owner"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data.get("expires_at"),
            by=request.user,
        )
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(request, f"API key created. Copy it now, it is not shown again: {secret}", messages.WARNING)
        return ""

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        each_selected(
            self,
            request,
            queryset,
            lambda pk: services.api_key_revoke(api_key_id=pk, by=request.user, reason="revoked in the admin"),
            errors=(services.ApiKeyError,),
            done="Revoked {n} key(s).",
            refused="Not revoked",
        )
