"""The PaymentIntent worker against the emulator through the real SDK: once, retried, recovered."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import payments as services
from billing import stripe_gateway
from billing.models import Payment, StripeCustomer
from billing.tasks import payment_intent_create_task
from booking import services as booking_services
from booking.tests.factories import PackageFactory
from web.testing import broker_down
from web.tests.factories import ListenerFactory, TalkerFactory


def _intents_of(customer_id: str) -> list[dict]:
    listing = stripe_gateway.call(stripe_gateway.client().v1.payment_intents.list, params={"customer": customer_id})
    return [stripe_gateway.as_dict(intent) for intent in listing.data]


def _book(**kwargs):
    return booking_services.booking_create(
        talker=kwargs.get("talker") or TalkerFactory(),
        listener_id=(kwargs.get("listener") or ListenerFactory()).pk,
        package_id=PackageFactory(price=kwargs.get("price", "30.00")).pk,
        scheduled_at=timezone.now() + timedelta(days=3),
    )


@pytest.mark.django_db
def test_running_the_task_twice_creates_one_payment_intent(stripe_emulator):
    booking = _book()

    payment_intent_create_task.apply(args=[booking.payment.pk]).get()
    payment_intent_create_task.apply(args=[booking.payment.pk]).get()

    payment = Payment.objects.get(pk=booking.payment.pk)
    customer = StripeCustomer.objects.get(user=booking.talker)
    intents = _intents_of(customer.stripe_customer_id)
    assert [i["id"] for i in intents] == [payment.stripe_payment_intent_id]
    assert intents[0]["amount"] == 3000 and intents[0]["currency"] == "usd"
    assert intents[0]["metadata"] == {"booking_id": str(booking.pk), "payment_id": str(payment.pk), "app_fee": "300"}
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD


@pytest.mark.django_db
def test_a_crash_after_stripe_answered_is_covered_by_the_idempotency_key(stripe_emulator):
    """Stripe created the intent but our save was lost: the next run gets the same intent back."""
    booking = _book()
    payment = booking.payment
    first = stripe_gateway.payment_intent_create(
        payment_id=payment.pk,
        booking_id=booking.pk,
        amount=payment.amount,
        currency="usd",
        customer_id=services.stripe_customer_get_or_create(user=booking.talker),
        application_fee=payment.app_fee,
        description=services._intent_description(booking),
    )

    services.payment_intent_create(payment_id=payment.pk)

    payment.refresh_from_db()
    assert payment.stripe_payment_intent_id == first["id"]
    assert len(_intents_of(StripeCustomer.objects.get(user=booking.talker).stripe_customer_id)) == 1


@pytest.mark.django_db
def test_one_customer_per_talker_across_bookings(stripe_emulator):
    talker = TalkerFactory()
    for _ in range(2):
        booking = _book(talker=talker)
        services.payment_intent_create(payment_id=booking.payment.pk)

    customer = StripeCustomer.objects.get(user=talker)
    assert len(_intents_of(customer.stripe_customer_id)) == 2


@pytest.mark.django_db
def test_transient_stripe_errors_are_retried_and_then_succeed(stripe_emulator, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    booking = _book()
    stripe_emulator.post("/_emulator/faults", {"mode": "500", "count": 1})

    with pytest.raises(stripe_gateway.TransientStripeError):
        services.payment_intent_create(payment_id=booking.payment.pk)
    assert Payment.objects.get(pk=booking.payment.pk).status == Payment.Status.AWAITING_INTENT

    stripe_emulator.post("/_emulator/faults", {"mode": "429", "count": 1})
    with pytest.raises(stripe_gateway.TransientStripeError):
        services.payment_intent_create(payment_id=booking.payment.pk)

    payment = services.payment_intent_create(payment_id=booking.payment.pk)
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD and payment.client_secret


@pytest.mark.django_db
def test_a_permanent_stripe_error_marks_the_payment_failed_with_the_reason(stripe_emulator):
    booking = _book()
    Payment.objects.filter(pk=booking.payment.pk).update(currency="zzz")

    payment = services.payment_intent_create(payment_id=booking.payment.pk)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message
    assert payment.stripe_payment_intent_id is None


def test_a_broker_outage_at_booking_time_is_recovered_by_the_sweeper(celery_worker, stripe_emulator, settings):
    settings.OUTBOX_RESEND_AFTER_SECONDS = 0
    with broker_down():
        booking = _book()
    payment = Payment.objects.get(pk=booking.payment.pk)
    assert payment.status == Payment.Status.AWAITING_INTENT

    assert services.payments_sweep_awaiting_intent() == 1

    deadline = timezone.now() + timedelta(seconds=30)
    while timezone.now() < deadline:
        payment.refresh_from_db()
        if payment.stripe_payment_intent_id:
            break
        time.sleep(0.05)
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    customer = StripeCustomer.objects.get(user=booking.talker)
    assert len(_intents_of(customer.stripe_customer_id)) == 1


@pytest.mark.django_db
def test_the_intent_takes_cards_only_so_a_server_side_confirmation_needs_no_return_url(stripe_emulator):
    """Stripe's default since 2023-08-16 (automatic payment methods, redirects allowed) would refuse a
    server-side confirmation without return_url; ours names its one method, the card."""
    booking = _book()
    payment = services.payment_intent_create(payment_id=booking.payment.pk)

    intent = stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
    confirmed = stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm,
        payment.stripe_payment_intent_id,
        params={"payment_method": "pm_card_visa"},
    )

    assert intent["allowed_payment_method_types"] == ["card"] and intent["automatic_payment_methods"] is None
    assert intent["payment_method_types"] == ["card"]
    assert confirmed.status == "succeeded"
