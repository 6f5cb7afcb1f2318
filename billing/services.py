"""Writes of the billing app: payments and their PaymentIntents."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.models import Payment, StripeCustomer
from booking.models import Booking
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale


def payment_create_for_booking(*, booking: Booking) -> Payment:
    """Record the booking's payment, to be created on Stripe by a worker once this transaction commits."""
    payment = Payment.objects.create(
        booking=booking,
        talker_id=booking.talker_id,
        currency=booking.currency,
        amount=booking.total_amount,
        app_fee=booking.app_fee,
        listener_amount=booking.listener_amount,
        intent_requested_at=timezone.now(),
    )
    transaction.on_commit(lambda: payment_intent_enqueue(payment_id=payment.pk))
    return payment


def payment_intent_enqueue(*, payment_id: int) -> bool:
    """Ask a worker to create the PaymentIntent. A broker outage is logged, not raised: the payment
    row is already committed and the sweeper enqueues it again once the broker is back."""
    from billing.tasks import payment_intent_create_task

    return enqueue_or_leave_to_sweeper(payment_intent_create_task, payment_id, what="PaymentIntent for payment")


def stripe_customer_get_or_create(*, user) -> str:
    existing = StripeCustomer.objects.filter(user=user).values_list("stripe_customer_id", flat=True).first()
    if existing:
        return existing
    # The idempotency key is derived from the user, so two workers racing here get the same customer.
    customer_id = stripe_gateway.customer_create(
        user_id=user.pk, email=user.email, name=user.get_full_name() or user.username
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(user=user, stripe_customer_id=customer_id)
    except IntegrityError:
        pass
    return StripeCustomer.objects.get(user=user).stripe_customer_id


def payment_intent_create(*, payment_id: int) -> Payment:
    """Create the PaymentIntent for a payment, once. Safe to run twice or concurrently: the row lock
    serialises workers, an existing intent is kept, and Stripe's idempotency key covers a crash
    between Stripe's answer and our save."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().select_related("talker", "booking__package").get(pk=payment_id)
        if payment.stripe_payment_intent_id or payment.status != Payment.Status.AWAITING_INTENT:
            return payment
        customer_id = stripe_customer_get_or_create(user=payment.talker)
        try:
            intent = stripe_gateway.payment_intent_create(
                payment_id=payment.pk,
                booking_id=payment.booking_id,
                amount=payment.amount,
                currency=payment.currency,
                customer_id=customer_id,
                application_fee=payment.app_fee,
                description=f"Talkpay booking #{payment.booking_id}: {payment.booking.package.name}",
            )
        except stripe_gateway.PermanentStripeError as error:
            payment.status = Payment.Status.FAILED
            payment.failure_code = error.code or "stripe_error"
            payment.failure_message = error.message
            payment.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])
            return payment
        payment.stripe_payment_intent_id = intent["id"]
        payment.client_secret = intent["client_secret"]
        payment.status = intent["status"]
        payment.save(update_fields=["stripe_payment_intent_id", "client_secret", "status", "updated_at"])
        return payment


def payments_sweep_awaiting_intent() -> int:
    """Re-enqueue payments still waiting for a PaymentIntent (the broker was down, or a task was lost)."""
    return enqueue_stale(
        Payment.objects.filter(status=Payment.Status.AWAITING_INTENT, stripe_payment_intent_id__isnull=True),
        stamp_field="intent_requested_at",
        enqueue=lambda pk: payment_intent_enqueue(payment_id=pk),
    )
