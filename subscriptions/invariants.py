"""ledger_check's subscription checks: every paid period invoice produced exactly its booking and payment,
no ended subscription still holds a slot, and our invoices say what Stripe's say."""

from __future__ import annotations

from django.db.models import Q

from billing.models import Payment
from billing.stripe_gateway import subscriptions as gateway
from booking.models import Booking
from subscriptions.models import Subscription, SubscriptionInvoice, SubscriptionSession
from subscriptions.services import CYCLE_RESTART, PERIOD_INVOICES


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
    problems = []
    live = Subscription.objects.exclude(stripe_subscription_id__isnull=True)
    for sub in live.iterator():
        assert sub.stripe_subscription_id is not None
        theirs = {i["id"]: i for i in gateway.invoices_list_for_subscription(sub.stripe_subscription_id)}
        ours = {r.stripe_invoice_id: r for r in SubscriptionInvoice.objects.filter(subscription=sub)}
        for invoice_id, invoice in theirs.items():
            if invoice.get("status") == "draft":
                continue
            row = ours.get(invoice_id)
            if row is None:
                if invoice.get("amount_paid"):
                    problems.append(f"Stripe invoice {invoice_id} of subscription {sub.pk} paid but not recorded")
                continue
            if (row.status, row.amount_paid) != (invoice.get("status"), invoice.get("amount_paid")):
                problems.append(
                    f"invoice {invoice_id}: ours {row.status} {row.amount_paid}, Stripe's "
                    f"{invoice.get('status')} {invoice.get('amount_paid')}"
                )
    return problems


CHECKS = [paid_periods_are_booked, ended_subscriptions_hold_no_slot, invoices_agree_with_stripe]
