"""ledger_check's subscription checks: every paid period invoice produced exactly its booking and payment,
no ended subscription still holds a slot, and our invoices say what Stripe's say."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.db.models import Q

from billing.models import Payment
from billing.stripe_gateway import StripeGatewayError
from billing.stripe_gateway import subscriptions as gateway
from booking.models import Booking
from payouts.invariants import CURSOR_MARGIN_SECONDS
from payouts.models import StripeCheckCursor
from subscriptions.models import Subscription, SubscriptionInvoice, SubscriptionSession
from subscriptions.services import CYCLE_RESTART, PERIOD_INVOICES

EVENTS_KEPT_SECONDS = 30 * 86400  # Stripe lists events of the last 30 days


def paid_periods_are_booked() -> list[str]:
    problems = []
    periods = Q(billing_reason__in=PERIOD_INVOICES) | Q(billing_reason=CYCLE_RESTART, occurrence__isnull=False)
    paid = SubscriptionInvoice.objects.filter(periods, status="paid", amount_paid__gt=0)
    for row in paid.filter(review_reason=""):
        if row.booking_id is None:
            problems.append(f"invoice {row.stripe_invoice_id} is paid but produced no booking")
            continue
        payment = Payment.objects.filter(booking_id=row.booking_id).first()
        if payment is None:
            problems.append(f"invoice {row.stripe_invoice_id}: booking {row.booking_id} has no payment")
        elif (payment.amount, payment.stripe_payment_intent_id) != (row.amount_paid, row.payment_intent_id):
            problems.append(
                f"invoice {row.stripe_invoice_id} paid {row.amount_paid} by {row.payment_intent_id}; booking "
                f"{row.booking_id}'s payment is {payment.amount} by {payment.stripe_payment_intent_id}"
            )
    return problems


def ended_subscriptions_hold_no_slot() -> list[str]:
    held = SubscriptionSession.objects.filter(
        subscription__status__in=Subscription.ENDED, booking__status=Booking.Status.RESERVED
    ).values_list("subscription_id", "booking_id")
    return [f"subscription {sub} has ended but booking {booking} still reserves its slot" for sub, booking in held]


def invoices_agree_with_stripe() -> list[str]:
    """Our invoices say what Stripe's say. Incremental: the first run (and one whose cursor is older than
    the 30 days Stripe keeps events) compares every subscription's invoices; later runs only the invoices
    Stripe sent an event for since the cursor, and ours that changed since, each read from Stripe. The
    cursor moves only when the run found nothing wrong, so a mismatch is reported until it is fixed."""
    cursor, _ = StripeCheckCursor.objects.get_or_create(name="subscription_invoices")
    started = int(time.time())
    since = max(0, cursor.created - CURSOR_MARGIN_SECONDS)
    try:
        if cursor.created == 0 or started - since > EVENTS_KEPT_SECONDS:
            problems = _compare_all()
        else:
            problems = _compare_changed(since)
    except StripeGatewayError as error:
        return [f"could not read subscription invoices on Stripe: {error}"]
    if not problems:
        StripeCheckCursor.objects.filter(pk=cursor.pk).update(created=started)
    return problems


def _compare_all() -> list[str]:
    problems = []
    live = Subscription.objects.exclude(stripe_subscription_id__isnull=True)
    for sub in live.iterator():
        assert sub.stripe_subscription_id is not None
        ours = {r.stripe_invoice_id: r for r in SubscriptionInvoice.objects.filter(subscription=sub)}
        for invoice in gateway.invoices_list_for_subscription(sub.stripe_subscription_id):
            problems += _compare(sub.pk, invoice, ours.get(invoice["id"]))
    return problems


def _compare_changed(since: int) -> list[str]:
    changed = gateway.invoice_ids_changed_since(created_gte=since)
    changed |= set(
        SubscriptionInvoice.objects.filter(updated_at__gte=datetime.fromtimestamp(since, tz=UTC)).values_list(
            "stripe_invoice_id", flat=True
        )
    )
    ours = {r.stripe_invoice_id: r for r in SubscriptionInvoice.objects.filter(stripe_invoice_id__in=changed)}
    subscriptions = dict(
        Subscription.objects.exclude(stripe_subscription_id__isnull=True).values_list("stripe_subscription_id", "pk")
    )
    problems = []
    for invoice_id in sorted(changed):
        invoice = gateway.invoice_retrieve(invoice_id)
        sub_id = subscriptions.get(gateway.invoice_subscription_id(invoice))
        if sub_id is not None:
            problems += _compare(sub_id, invoice, ours.get(invoice_id))
    return problems


def _compare(sub_id: int, invoice: dict, row: SubscriptionInvoice | None) -> list[str]:
    invoice_id = invoice["id"]
    if invoice.get("status") == "draft":
        return []
    if row is None:
        if invoice.get("amount_paid"):
            return [f"Stripe invoice {invoice_id} of subscription {sub_id} paid but not recorded"]
        return []
    if row.subscription_id != sub_id:
        return [f"invoice {invoice_id} is Stripe's for subscription {sub_id}, ours for {row.subscription_id}"]
    if (row.status, row.amount_paid) != (invoice.get("status"), invoice.get("amount_paid")):
        return [
            f"invoice {invoice_id}: ours {row.status} {row.amount_paid}, Stripe's "
            f"{invoice.get('status')} {invoice.get('amount_paid')}"
        ]
    return []


CHECKS = [paid_periods_are_booked, ended_subscriptions_hold_no_slot, invoices_agree_with_stripe]
