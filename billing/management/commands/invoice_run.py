"""`manage.py invoice_run --period 2026-11`: invoice a period through Stripe now."""

from django.core.management.base import BaseCommand, CommandError

from billing import invoicing, money, periods, selectors
from billing.stripe_client import BillingError


class Command(BaseCommand):
    help = "Invoice every customer's unbilled usage for a period (YYYY-MM) through Stripe. Safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM, a month that has ended")

    def handle(self, *args, period: str, **options) -> None:
        try:
            run = invoicing.invoice_run(period=period)
        except (BillingError, periods.BadPeriod) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        summary = selectors.run_summary(run)
        self.stdout.write(
            f"Invoice run #{run.pk} for {period}: {run.status}; invoiced {summary['done']} customer(s) "
            f"for {money.format_minor(summary['amount_minor'])}, {summary['failed']} failed."
        )
        for item in selectors.run_items(run).filter(status="failed"):
            self.stdout.write(f"  FAILED {item.customer.customer_ref}: {item.error}")
        if summary["failed"]:
            raise CommandError(f"{summary['failed']} customer(s) failed; fix the cause and run again (safe to rerun).")
