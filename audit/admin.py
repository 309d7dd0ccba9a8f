from django.contrib import admin

from audit.models import AuditEntry
from core.adminkit import ReadOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: the chain is appended to by services, never edited."""

    list_display = ("seq", "created_at", "kind", "actor", "subject", "short_hash")
    list_filter = ("kind",)
    search_fields = ("=subject", "=actor", "=hash")
    show_full_result_count = False

    @admin.display(description="hash")
    def short_hash(self, obj: AuditEntry) -> str:
        return obj.hash[:16] + "…"

    def has_change_permission(self, request, obj=None) -> bool:
        return False
