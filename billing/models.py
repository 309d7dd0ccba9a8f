"""Billing: customers, service offerings, rated usage, invoices and invoice runs.

Money is integers only: usage is rated in micro-units of the billing currency
(1/1,000,000), invoice lines are rounded once to the currency's minor units.
Stripe ids are kept on our rows, so nothing is created in Stripe twice even
after Stripe has forgotten an idempotency key (24 hours).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from billing.links import stripe_link
from tasks.models import ExecutionTask, TaskType


class Customer(models.Model):
    """A paying customer, as the AI side names it in `ExecutionTask.customer_ref`."""

    class Collection(models.TextChoices):
        CHARGE = "charge_automatically", "Charge the default payment method"
        SEND = "send_invoice", "Send the invoice to pay"

    customer_ref = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="billing_customers",
        help_text="People of the Customers group who may see this customer's billing.",
    )
    collection_method = models.CharField(max_length=30, choices=Collection.choices, default=Collection.CHARGE)
    stripe_customer_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    # Set before asking Stripe to create the customer; with no id saved after it, a
    # crash happened in between, and a retry past 24 hours looks the customer up first.
    stripe_create_attempted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_ref})"


class ServiceOffering(models.Model):
    """What a customer buys: a price for the task types it covers."""

    class Unit(models.TextChoices):
        TASK = "task", "per task"
        THOUSAND_TOKENS = "1k_tokens", "per 1,000 tokens"

    name = models.CharField(max_length=200, unique=True)
    unit = models.CharField(max_length=20, choices=Unit.choices, default=Unit.TASK)
    unit_price_micros = models.BigIntegerField(
        help_text="Price per unit in millionths of the billing currency (1 cent = 10,000)."
    )
    stripe_product_id = models.CharField(max_length=100, blank=True, default="")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(condition=models.Q(unit_price_micros__gte=0), name="offering_price_gte_0")
        ]

    def __str__(self) -> str:
        return self.name


class OfferingTaskType(models.Model):
    """A task type an offering covers. A task type belongs to at most one offering
    (unique), so a finished task has exactly one price or none."""

    offering = models.ForeignKey(ServiceOffering, on_delete=models.CASCADE, related_name="task_types")
    task_type = models.CharField(max_length=40, choices=TaskType.choices, unique=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "covered task type"

    def __str__(self) -> str:
        return self.task_type


class InvoiceStatus(models.TextChoices):
    # Stripe's invoice states; a local invoice not yet in Stripe is a draft.
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


class Invoice(models.Model):
    """One invoice per customer per period; its lines are one per offering."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    period = models.CharField(max_length=7, help_text="YYYY-MM")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    total_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    amount_remaining_minor = models.BigIntegerField(default=0)
    number = models.CharField(max_length=100, blank=True, default="", help_text="Stripe's number, once finalized.")
    due_date = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    stripe_invoice_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    stripe_create_attempted_at = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=500, blank=True, default="")
    invoice_pdf = models.URLField(max_length=500, blank=True, default="")
    finalized_at = models.DateTimeField(null=True, blank=True)
    collected_at = models.DateTimeField(null=True, blank=True, help_text="When it was charged or sent.")
    collection_error = models.TextField(blank=True, default="")
    # `created` of the last Stripe event applied (one-second resolution): a same-status
    # event older than this does not overwrite amounts.
    stripe_event_created = models.BigIntegerField(null=True, blank=True)
    # A lease, so that two runs never push the same invoice to Stripe at once.
    push_lease_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["push_lease_until"])

    class Meta:
        ordering = ("-period", "-id")
        constraints = [models.UniqueConstraint(fields=["customer", "period"], name="invoice_one_per_customer_period")]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return self.number or f"Draft {self.customer.customer_ref}-{self.period}"

    @property
    def pay_url(self) -> str:
        """Stripe's page to pay this invoice, if it is one of Stripe's addresses (billing.links)."""
        return stripe_link(self.hosted_invoice_url)

    @property
    def pdf_url(self) -> str:
        return stripe_link(self.invoice_pdf)

    @property
    def is_payable(self) -> bool:
        return self.status == InvoiceStatus.OPEN and bool(self.pay_url)


class InvoiceLine(models.Model):
    """All of one offering's usage on an invoice: rated in micro-units, rounded once here."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    offering = models.ForeignKey(ServiceOffering, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=300)
    quantity = models.BigIntegerField()
    tasks = models.IntegerField()
    amount_micros = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    stripe_invoice_item_id = models.CharField(max_length=100, unique=True, null=True, blank=True)

    class Meta:
        ordering = ("id",)
        constraints = [models.UniqueConstraint(fields=["invoice", "offering"], name="invoice_line_one_per_offering")]

    def __str__(self) -> str:
        return self.description


class UsageRecord(models.Model):
    """One billable task, rated when it finished. Price and amount are copied here,
    so a later price change never rewrites what was billed."""

    task = models.OneToOneField(ExecutionTask, on_delete=models.PROTECT, related_name="usage_record")
    # Every billed finish writes a row here: no index the others already give. A customer's
    # usage is found by usage_customer_time (its first column), an invoice line's by
    # usage_invoice_line, not by the indexes Django would add for the two foreign keys.
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="usage", db_index=False)
    offering = models.ForeignKey(ServiceOffering, on_delete=models.PROTECT, related_name="usage")
    unit = models.CharField(max_length=20, choices=ServiceOffering.Unit.choices)
    quantity = models.BigIntegerField(help_text="1 per task, or the tokens used")
    unit_price_micros = models.BigIntegerField()
    amount_micros = models.BigIntegerField()
    cost_micros = models.BigIntegerField(default=0, help_text="The AI cost of the task, same currency.")
    occurred_at = models.DateTimeField(help_text="When the task finished.")
    recorded_at = models.DateTimeField(default=timezone.now)
    invoice_line = models.ForeignKey(
        InvoiceLine, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records", db_index=False
    )

    class Meta:
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="usage_customer_time"),
            models.Index(fields=["invoice_line"], name="usage_invoice_line"),
        ]

    def __str__(self) -> str:
        return f"usage for task {self.task_id}"


class Payment(models.Model):
    """Money moving on an invoice: a payment, a refund or a credit note (from Stripe)."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"
        CREDIT_NOTE = "credit_note", "Credit note"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PAYMENT)
    stripe_id = models.CharField(max_length=100, unique=True)
    amount_minor = models.BigIntegerField()
    status = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_id}"


class InvoiceRun(models.Model):
    """One run of automated invoicing for a period, with what happened per customer."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Some customers failed"

    period = models.CharField(max_length=7)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ("-started_at", "-id")

    def __str__(self) -> str:
        return f"invoice run {self.period} #{self.pk}"


class InvoiceRunItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Invoiced"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(InvoiceRun, on_delete=models.CASCADE, related_name="items")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    attempts = models.IntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        constraints = [models.UniqueConstraint(fields=["run", "customer"], name="run_item_one_per_customer")]

    def __str__(self) -> str:
        return f"{self.run} {self.customer}"


class StripeEvent(models.Model):
    """A verified Stripe webhook delivery, stored under its unique Stripe id before
    it is processed, so a duplicate delivery is a no-op and a failure can be replayed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Stored, no handler"
        FAILED = "failed", "Failed"

    stripe_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=50, blank=True, default="")
    created = models.BigIntegerField(help_text="Stripe's `created` (Unix seconds).")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    result = models.TextField(blank=True, default="", help_text="What the handler did, or why it did nothing.")
    error = models.TextField(blank=True, default="")
    attempts = models.IntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [models.Index(fields=["status", "id"], name="stripe_event_status")]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
