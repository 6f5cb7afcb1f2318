"""`manage.py replay_webhook evt_… [evt_…]`: run stored Stripe events again, now, whatever their status.
Handlers are idempotent, so replaying a processed event changes nothing. `--enqueue` hands them to
the workers instead."""

from django.core.management.base import BaseCommand, CommandError

from billing.models import WebhookEvent
from billing.webhooks.processing import webhook_event_enqueue, webhook_event_replay


class Command(BaseCommand):
    help = "Replay stored Stripe webhook events by Stripe event id."

    def add_arguments(self, parser):
        parser.add_argument("event_ids", nargs="+", metavar="evt_id")
        parser.add_argument("--enqueue", action="store_true", help="enqueue for the workers instead of running here")

    def handle(self, *args, event_ids, enqueue, **options):
        failed = []
        for stripe_event_id in event_ids:
            pk = WebhookEvent.objects.filter(stripe_event_id=stripe_event_id).values_list("pk", flat=True).first()
            if pk is None:
                failed.append(stripe_event_id)
                self.stderr.write(f"{stripe_event_id}: no such event stored")
                continue
            if enqueue:
                outcome = "enqueued" if webhook_event_enqueue(webhook_event_id=pk) else "enqueue failed"
            else:
                outcome = webhook_event_replay(stripe_event_id=stripe_event_id)
            if outcome in (WebhookEvent.Status.FAILED, "enqueue failed"):
                failed.append(stripe_event_id)
            self.stdout.write(f"{stripe_event_id}: {outcome}")
        if failed:
            raise CommandError(f"{len(failed)} event(s) not replayed: {', '.join(failed)}")
