"""The dispatch table and the owners billing calls are fixed at start-up, never discovered by name."""

from billing import owners
from billing.webhooks.dispatch import webhook_handlers

HANDLED = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "payment_intent.processing",
    "payment_intent.amount_capturable_updated",
    "charge.refunded",
    "charge.refund.updated",
    "charge.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "account.updated",
    "capability.updated",
    "transfer.reversed",
    "payout.failed",
    # subscriptions (issue 14)
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "subscription_schedule.created",
    "subscription_schedule.updated",
    "subscription_schedule.released",
    "subscription_schedule.canceled",
    "subscription_schedule.completed",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.upcoming",
    "invoice_payment.paid",
}


def test_the_handled_event_types_are_exactly_these():
    assert set(webhook_handlers()) == HANDLED


def test_booking_and_payouts_registered_as_billings_owners():
    from booking import services as booking_services
    from payouts import services as payout_services

    assert owners.bookings() is booking_services
    assert owners.payouts() is payout_services


def test_every_owner_service_billing_names_exists():
    pairs = (
        (owners.bookings(), owners.BookingOwner),
        (owners.payouts(), owners.PayoutsOwner),
        (owners.subscriptions(), owners.SubscriptionsOwner),
    )
    for owner, protocol in pairs:
        for name in [n for n in vars(protocol) if not n.startswith("_")]:
            assert callable(getattr(owner, name)), name
