"""Billing admin, with history. Rated usage, invoices and runs are read-only here:
they change through the services (the invoice run, Stripe)."""

from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from billing.models import (
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceRunItem,
    OfferingTaskType,
    Payment,
    ServiceOffering,
    StripeEvent,
    UsageRecord,
)


class ReadOnlyMixin:
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(SimpleHistoryAdmin):
    list_display = ("name", "customer_ref", "collection_method", "stripe_customer_id")
    search_fields = ("=customer_ref", "name", "=stripe_customer_id")
    filter_horizontal = ("users",)
    readonly_fields = ("stripe_customer_id", "stripe_create_attempted_at")


class CoveredTaskTypeInline(admin.TabularInline):
    model = OfferingTaskType
    extra = 1


@admin.register(ServiceOffering)
class ServiceOfferingAdmin(SimpleHistoryAdmin):
    list_display = ("name", "unit", "unit_price_micros", "active", "stripe_product_id")
    inlines = [CoveredTaskTypeInline]


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("task", "customer", "offering", "quantity", "amount_micros", "occurred_at", "invoice_line")
    list_filter = ("offering",)
    list_select_related = ("task", "customer", "offering", "invoice_line")
    show_full_result_count = False
    raw_id_fields = ("task", "invoice_line")


class InvoiceLineInline(ReadOnlyMixin, admin.TabularInline):
    model = InvoiceLine


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyMixin, SimpleHistoryAdmin):
    list_display = ("__str__", "customer", "period", "status", "total_minor", "stripe_invoice_id", "due_date")
    list_filter = ("status", "period")
    list_select_related = ("customer",)
    inlines = [InvoiceLineInline]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyMixin, SimpleHistoryAdmin):
    list_display = ("stripe_id", "kind", "invoice", "amount_minor", "status", "created_at")


class InvoiceRunItemInline(ReadOnlyMixin, admin.TabularInline):
    model = InvoiceRunItem


@admin.register(InvoiceRun)
class InvoiceRunAdmin(ReadOnlyMixin, SimpleHistoryAdmin):
    list_display = ("__str__", "period", "status", "started_at", "finished_at", "started_by")
    inlines = [InvoiceRunItemInline]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("stripe_id", "type", "created", "status", "attempts", "result", "error", "received_at")
    list_filter = ("status", "type")
    search_fields = ("=stripe_id", "type")
    show_full_result_count = False
    actions = ["replay"]

    @admin.action(description="Process the selected events again (failed or pending ones)")
    def replay(self, request, queryset):
        from billing import webhooks

        results = [webhooks.event_process(event_id=pk) for pk in queryset.values_list("pk", flat=True)]
        failed = [e.stripe_id for e in results if e.status == StripeEvent.Status.FAILED]
        self.message_user(request, f"Processed {len(results) - len(failed)} event(s).", messages.SUCCESS)
        if failed:
            self.message_user(request, "Still failing: " + ", ".join(failed[:10]), messages.WARNING)
