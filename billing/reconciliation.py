"""Periodic reconciliation: recover from lost webhooks by asking Stripe.

Payments that have waited longer than `PAYMENT_RECONCILE_AFTER_SECONDS` in a non-final state are
read from Stripe and moved through `payment_intent_apply`, the same transitions the webhook handlers
make, under the same row lock, so a webhook and the reconciliation racing each other book once.
A payment Stripe says has not moved is touched (`updated_at`), so an abandoned checkout is asked
about once per period, not on every run. The same beat job (`billing.payment_reconcile`) also
enqueues again webhook events left pending (`billing.webhooks.processing.webhook_events_sweep`), the
other way work could be lost.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.models import Payment
from billing.payments import NON_FINAL, payment_intent_apply

logger = logging.getLogger(__name__)

BATCH = 200
# Checkouts abandoned longer than this are left alone: Stripe keeps such intents open forever, and
# asking about them on every run would crowd out the payments that matter.
MAX_AGE = timedelta(days=30)


def payment_reconcile(*, payment_id: int) -> bool:
    """Bring one payment in line with its PaymentIntent on Stripe. Returns whether it changed."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("booking").get(pk=payment_id)
        if payment.status not in NON_FINAL or not payment.stripe_payment_intent_id:
            return False
        intent = stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
        changed = payment_intent_apply(payment=payment, intent=intent, fresh=True)
        if not changed:
            payment.save(update_fields=["updated_at"])
        return changed


def payments_reconcile(*, older_than_seconds: int | None = None, limit: int = BATCH) -> dict[str, int]:
    if older_than_seconds is None:
        older_than_seconds = settings.PAYMENT_RECONCILE_AFTER_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        Payment.objects.filter(
            status__in=NON_FINAL,
            stripe_payment_intent_id__isnull=False,
            updated_at__lt=cutoff,
            created_at__gte=timezone.now() - MAX_AGE,
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    counts = {"checked": 0, "changed": 0, "errors": 0}
    for payment_id in stale:
        counts["checked"] += 1
        try:
            counts["changed"] += payment_reconcile(payment_id=payment_id)
        except stripe_gateway.StripeGatewayError as error:
            # One payment's trouble must not stop the others; the next run tries it again.
            counts["errors"] += 1
            logger.warning("reconciling payment %s failed: %s", payment_id, error)
    if counts["changed"] or counts["errors"]:
        logger.info("payment reconciliation: %s", counts)
    return counts
