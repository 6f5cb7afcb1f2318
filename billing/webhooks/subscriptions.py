"""customer.subscription.*, subscription_schedule.*, invoice.* and invoice_payment.* events: triggers only.
The subscription (a schedule's: the one it manages) or the invoice is re-read from Stripe and applied by its
owner (`subscriptions.services`, through `billing.owners`) when it is one of ours, matched by the Stripe
subscription id we stored; repeated or reordered events re-apply the same fresh state, which changes
nothing more."""

from __future__ import annotations

import logging

from django.db import transaction

from billing import owners
from billing.stripe_gateway.subscriptions import invoice_payment_invoice_id
from billing.webhooks.outcomes import IGNORED, PROCESSED

logger = logging.getLogger(__name__)


def handle_subscription(event: dict) -> str:
    sub = event["data"]["object"]
    with transaction.atomic(savepoint=False):  # joins the dispatcher's transaction
        changed = owners.subscriptions().subscription_sync(stripe_subscription_id=sub.get("id") or "")
    return PROCESSED if changed else IGNORED


def handle_schedule(event: dict) -> str:
    """subscription_schedule.*: the schedule is re-read, and the subscription it manages applied."""
    schedule = event["data"]["object"]
    with transaction.atomic(savepoint=False):
        changed = owners.subscriptions().schedule_sync(stripe_schedule_id=schedule.get("id") or "")
    return PROCESSED if changed else IGNORED


def handle_invoice(event: dict) -> str:
    invoice = event["data"]["object"]
    if not invoice.get("id"):
        # invoice.upcoming previews an invoice that does not exist yet: nothing to apply.
        logger.info("%s %s: a preview, nothing to apply", event["type"], event["id"])
        return IGNORED
    with transaction.atomic(savepoint=False):
        changed = owners.subscriptions().invoice_sync(stripe_invoice_id=invoice["id"])
    return PROCESSED if changed else IGNORED


def handle_invoice_payment(event: dict) -> str:
    invoice_id = invoice_payment_invoice_id(event["data"]["object"])
    if not invoice_id:
        return IGNORED
    with transaction.atomic(savepoint=False):
        changed = owners.subscriptions().invoice_sync(stripe_invoice_id=invoice_id)
    return PROCESSED if changed else IGNORED


HANDLERS = {
    "customer.subscription.created": handle_subscription,
    "customer.subscription.updated": handle_subscription,
    "customer.subscription.deleted": handle_subscription,
    "customer.subscription.paused": handle_subscription,
    "customer.subscription.resumed": handle_subscription,
    "subscription_schedule.created": handle_schedule,
    "subscription_schedule.updated": handle_schedule,
    "subscription_schedule.released": handle_schedule,
    "subscription_schedule.canceled": handle_schedule,
    "subscription_schedule.completed": handle_schedule,
    "invoice.created": handle_invoice,
    "invoice.finalized": handle_invoice,
    "invoice.paid": handle_invoice,
    "invoice.payment_succeeded": handle_invoice,
    "invoice.payment_failed": handle_invoice,
    "invoice.payment_action_required": handle_invoice,
    "invoice.voided": handle_invoice,
    "invoice.marked_uncollectible": handle_invoice,
    "invoice.upcoming": handle_invoice,
    "invoice_payment.paid": handle_invoice_payment,
}
