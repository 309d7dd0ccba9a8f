"""Billing admin, with history. Rated usage, invoices and runs are read-only here:
they change through the services (the invoice run, Stripe). Offerings are created
and changed through the offering services (a reason, history with the operator)."""

from django import forms
from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from billing import services
from billing.models import (
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceRunItem,
    Payment,
    ServiceOffering,
    StripeEvent,
    UsageRecord,
)
from billing.stripe_client import BillingError
from core.adminkit import ReadOnlyMixin, ReasonForm, ServiceSaveMixin
from tasks.models import TaskType


class CustomerForm(ReasonForm):
    class Meta:
        model = Customer
        fields = ["customer_ref", "name", "email", "collection_method", "users"]


@admin.register(Customer)
class CustomerAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Through `services.customer_create` / `customer_change`, with a reason in the
    history. The customer_ref is fixed once created (tasks name the customer by it)."""

    form = CustomerForm
    list_display = ("name", "customer_ref", "collection_method", "stripe_customer_id")
    search_fields = ("=customer_ref", "name", "=stripe_customer_id")
    filter_horizontal = ("users",)
    service_errors = (BillingError,)

    def get_fields(self, request, obj=None):
        fields = ["customer_ref", "name", "email", "collection_method", "users", "change_reason"]
        return fields if obj is None else [*fields, "stripe_customer_id", "stripe_create_attempted_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("customer_ref", "stripe_customer_id", "stripe_create_attempted_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # invoices and usage refer to it

    def save_through_service(self, request, obj, form, change) -> str:
        data = form.cleaned_data
        if change:
            services.customer_change(
                customer_id=obj.pk,
                name=data["name"],
                email=data["email"],
                collection_method=data["collection_method"],
                users=list(data["users"]),
                by=request.user,
                reason=data["change_reason"],
            )
            return ""
        customer = services.customer_create(
            customer_ref=data["customer_ref"],
            name=data["name"],
            email=data["email"],
            collection_method=data["collection_method"],
            users=list(data["users"]),
            by=request.user,
            reason=data["change_reason"],
        )
        obj.pk = customer.pk
        return ""


class ServiceOfferingForm(ReasonForm):
    task_types = forms.MultipleChoiceField(
        choices=TaskType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The task types this offering prices; a task type belongs to at most one offering.",
    )

    class Meta:
        model = ServiceOffering
        fields = ["name", "unit", "unit_price_micros", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["task_types"].initial = list(self.instance.task_types.values_list("task_type", flat=True))


@admin.register(ServiceOffering)
class ServiceOfferingAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Through `services.offering_create` / `offering_change`: the price, the name,
    whether it is active and the covered task types, with a reason in the history.
    Usage already rated keeps its price. The unit is fixed once created."""

    form = ServiceOfferingForm
    list_display = ("name", "unit", "unit_price_micros", "covered", "active", "stripe_product_id")
    service_errors = (BillingError,)
    history_list_display = ["unit_price_micros", "active"]

    @admin.display(description="task types")
    def covered(self, obj: ServiceOffering) -> str:
        return ", ".join(t.task_type for t in obj.task_types.all()) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("task_types")

    def get_fields(self, request, obj=None):
        fields = ["name", "unit", "unit_price_micros", "task_types", "active", "change_reason"]
        return fields if obj is None else [*fields, "stripe_product_id", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("unit", "stripe_product_id", "created_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # usage and invoices refer to it: make it inactive instead

    def save_through_service(self, request, obj, form, change) -> str:
        data = form.cleaned_data
        if change:
            services.offering_change(
                offering_id=obj.pk,
                name=data["name"],
                unit_price_micros=data["unit_price_micros"],
                active=data["active"],
                task_types=list(data["task_types"]),
                by=request.user,
                reason=data["change_reason"],
            )
            return ""
        offering = services.offering_create(
            name=data["name"],
            unit=data["unit"],
            unit_price_micros=data["unit_price_micros"],
            task_types=list(data["task_types"]),
            active=data["active"],
            by=request.user,
            reason=data["change_reason"],
        )
        obj.pk = offering.pk
        return ""


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
