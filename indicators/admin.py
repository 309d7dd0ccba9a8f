"""Admin for the indicators: alerts (read-only; acknowledged and resolved only
through the services, by the actions below, with a reason), series and their
points (read-only)."""

from django.contrib import admin

from core.adminkit import ReadOnlyAdmin, ReadOnlyHistoryAdmin, ReasonActionForm, each_selected
from core.roles import OPERATORS, has_role
from indicators.models import Alert, AlertEvent, Point, Series
from indicators.services import alerts


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ("at", "type", "actor", "reason", "data")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyHistoryAdmin):
    list_display = ("pk", "kind", "state", "title", "ai_model", "member", "fired_at", "acknowledged_by", "resolved_at")
    list_filter = ("state", "kind")
    search_fields = ("title", "ai_model", "dedup_key")
    ordering = ("-fired_at",)
    inlines = [AlertEventInline]
    action_form = ReasonActionForm
    actions = ["acknowledge", "resolve"]
    history_list_display = ["state", "acknowledge_reason", "resolve_reason"]

    def _reason(self, request) -> str:
        return request.POST.get("change_reason", "")

    def get_actions(self, request):
        found = super().get_actions(request)
        if not has_role(request.user, OPERATORS):
            found.pop("acknowledge", None)
            found.pop("resolve", None)
        return found

    @admin.action(description="Acknowledge the selected alerts (say why)")
    def acknowledge(self, request, queryset):
        reason = self._reason(request)
        each_selected(
            self,
            request,
            queryset,
            lambda pk: alerts.alert_acknowledge(alert_id=pk, by=request.user, reason=reason),
            errors=(alerts.AlertRefused,),
            done="{n} alert(s) acknowledged.",
            refused="Not acknowledged",
        )

    @admin.action(description="Resolve the selected alerts (say why)")
    def resolve(self, request, queryset):
        reason = self._reason(request)
        each_selected(
            self,
            request,
            queryset,
            lambda pk: alerts.alert_resolve(alert_id=pk, by=request.user, reason=reason),
            errors=(alerts.AlertRefused,),
            done="{n} alert(s) resolved.",
            refused="Not resolved",
        )


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ("key", "label_key", "scope", "direction", "last_value", "last_at")
    list_filter = ("scope", "key")
    search_fields = ("key", "label_key")


@admin.register(Point)
class PointAdmin(ReadOnlyAdmin):
    list_display = ("series", "period", "start", "value", "n", "computed_at")
    list_filter = ("period",)
    list_select_related = ("series",)
    date_hierarchy = "start"
