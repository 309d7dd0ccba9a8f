"""`manage.py stripe_replay`: process failed (or given) Stripe events again."""

from django.core.management.base import BaseCommand

from billing import webhooks
from billing.models import StripeEvent


class Command(BaseCommand):
    help = "Reprocess Stripe webhook events that failed (or the given event ids). Safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("event_ids", nargs="*", help="Stripe event ids (evt_…); default: every failed event")
        parser.add_argument("--pending", action="store_true", help="also process events still pending")

    def handle(self, *args, event_ids: list[str], pending: bool, **options) -> None:
        if event_ids:
            events = StripeEvent.objects.filter(stripe_id__in=event_ids)
            missing = set(event_ids) - set(events.values_list("stripe_id", flat=True))
            for stripe_id in sorted(missing):
                self.stderr.write(f"  no stored event {stripe_id}")
        else:
            statuses = [StripeEvent.Status.FAILED] + ([StripeEvent.Status.PENDING] if pending else [])
            events = StripeEvent.objects.filter(status__in=statuses)
        ids = list(events.order_by("created", "id").values_list("pk", flat=True))
        failed = 0
        for pk in ids:
            event = webhooks.event_process(event_id=pk)
            failed += event.status == StripeEvent.Status.FAILED
            self.stdout.write(f"  {event.stripe_id} {event.type}: {event.status} {event.result or event.error}")
        self.stdout.write(f"Replayed {len(ids)} event(s); {failed} still failing.")
