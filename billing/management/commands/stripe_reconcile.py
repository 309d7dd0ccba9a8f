"""`manage.py stripe_reconcile`: re-fetch unsettled invoices from Stripe and report corrections."""

from django.core.management.base import BaseCommand, CommandError

from billing import webhooks
from billing.stripe_client import BillingError


class Command(BaseCommand):
    help = "Re-fetch open, draft and uncollectible invoices from Stripe and apply what Stripe says now."

    def handle(self, *args, **options) -> None:
        try:
            corrections = webhooks.reconcile_invoices()
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        for line in corrections:
            self.stdout.write(f"  {line}")
        self.stdout.write(f"Corrected {len(corrections)} invoice(s).")
