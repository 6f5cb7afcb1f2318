"""Cancelling a booking: who may, when, and what the policy refunds (against the Stripe emulator)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Payment, Refund
from billing.tasks import refund_create_task
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    paid_booking,
    payment_of,
    shift_schedule,
    split_balances,
)
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import ListenerPayout
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db


def _cancel(user, booking, reason="Something came up"):
    return auth_client(user).post(f"/api/payment/bookings/{booking.pk}/cancel/", {"reason": reason}, format="json")


def _stripe_refunds(payment: Payment) -> list[dict]:
    from billing import stripe_gateway

    listing = stripe_gateway.call(
        stripe_gateway.client().v1.refunds.list, params={"payment_intent": payment.stripe_payment_intent_id}
    )
    return [stripe_gateway.as_dict(r) for r in listing.data]


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def test_talker_cancelling_a_day_or_more_ahead_gets_everything_back(events):
    booking = paid_booking(events, hours_ahead=25)

    response = _cancel(booking.talker, booking)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["refund"]["amount"] == "30.00"
    assert body["refund"]["policy"] == "talker_early"
    assert body["booking"]["status"] == "cancelled"
    assert body["booking"]["cancel_reason"] == "Something came up"
    refund = Refund.objects.get(payment__booking=booking)
    assert (refund.amount, refund.status, refund.requested_by_id) == (3000, Refund.Status.PENDING, booking.talker_id)


def test_talker_cancelling_late_gets_the_configured_share_and_the_listener_keeps_the_rest(events, settings):
    settings.CANCEL_LATE_REFUND_PERCENT = 50
    booking = paid_booking(events, price="33.33", hours_ahead=72)
    shift_schedule(booking, hours_from_now=3)

    response = _cancel(booking.talker, booking)

    assert response.status_code == 200, response.json()
    # Half of 33.33, rounded half up: 16.67.
    assert response.json()["refund"] == {
        "amount": "16.67",
        "currency": "usd",
        "policy": "talker_late",
        "refund_id": Refund.objects.get(payment__booking=booking).pk,
        "status": "pending",
    }
    # The worker sends it, Stripe confirms it: the split is reversed for 16.67 and the listener's
    # earning keeps the rest, now payable.
    assert refund_create_task.apply(args=[response.json()["refund"]["refund_id"]]).get() == Refund.Status.REQUESTED
    events.deliver_new()
    payment = payment_of(booking)
    assert payment.amount_refunded == 1667
    earning = ListenerPayout.objects.get(booking=booking)
    # App part of the refund: 1667 × 333 / 3333 = 166.55 → 167; the listener gives back the other 1500.
    assert earning.net_amount == 3000 - (1667 - 167)
    assert earning.payable_at is not None
    assert split_balances(booking)[f"listener:{booking.listener_id}:payable"] == earning.net_amount
    assert_ledger_clean()


def test_talker_cancelling_after_the_start_gets_nothing(events):
    booking = paid_booking(events)
    shift_schedule(booking, hours_from_now=-0.1)

    response = _cancel(booking.talker, booking)

    assert response.status_code == 200, response.json()
    assert response.json()["refund"]["amount"] == "0.00"
    assert response.json()["refund"]["policy"] == "talker_after_start"
    assert not Refund.objects.filter(payment__booking=booking).exists()
    assert ListenerPayout.objects.get(booking=booking).payable_at is not None
    assert_ledger_clean()


def test_listener_cancelling_refunds_in_full_even_at_the_last_minute(events):
    booking = paid_booking(events)
    shift_schedule(booking, hours_from_now=0.5)

    response = _cancel(booking.listener, booking)

    assert response.status_code == 200, response.json()
    assert response.json()["refund"]["amount"] == "30.00"
    assert response.json()["refund"]["policy"] == "listener_cancelled"
    refund = Refund.objects.get(payment__booking=booking)
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()
    booking.refresh_from_db()
    assert booking.status == Booking.Status.REFUNDED
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.CANCELLED
    stripe_refunds = _stripe_refunds(payment_of(booking))
    assert [(r["amount"], r["metadata"]["refund_id"]) for r in stripe_refunds] == [(3000, str(refund.pk))]
    assert_ledger_clean()


def test_cancelling_an_unpaid_booking_cancels_its_payment_intent_and_refunds_nothing(stripe_emulator):
    from billing import payments as services
    from billing import stripe_gateway
    from billing.tasks import payment_intent_cancel_task

    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory().pk,
        scheduled_at=timezone.now() + timedelta(days=2),
    )
    services.payment_intent_create(payment_id=booking.payment.pk)

    response = _cancel(booking.talker, booking)

    assert response.status_code == 200, response.json()
    assert response.json()["refund"]["amount"] == "0.00"
    assert response.json()["refund"]["policy"] == "unpaid"
    assert payment_intent_cancel_task.apply(args=[booking.payment.pk]).get() == Payment.Status.CANCELED
    intent = stripe_gateway.payment_intent_retrieve(payment_of(booking).stripe_payment_intent_id)
    assert intent["status"] == "canceled"
    assert not Refund.objects.exists()


def test_an_unpaid_booking_whose_intent_was_never_created_is_cancelled_locally(db):
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory().pk,
        scheduled_at=timezone.now() + timedelta(days=2),
    )

    response = _cancel(booking.listener, booking)

    assert response.status_code == 200, response.json()
    assert payment_of(booking).status == Payment.Status.CANCELED


def test_a_cancelled_booking_cannot_be_cancelled_again(events):
    booking = paid_booking(events)
    assert _cancel(booking.talker, booking).status_code == 200

    again = _cancel(booking.talker, booking)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"
    assert Refund.objects.filter(payment__booking=booking).count() == 1


def test_someone_else_cannot_cancel_a_booking(events):
    booking = paid_booking(events)

    response = _cancel(TalkerFactory(), booking)

    assert response.status_code == 404
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_what_a_late_cancellation_leaves_the_listener_is_paid_out(stripe_emulator, events):
    from billing.tests.refund_support import connected_listener, pay_out
    from payouts.models import Payout

    booking = paid_booking(events, listener=connected_listener(stripe_emulator))
    shift_schedule(booking, hours_from_now=2)
    refund_id = _cancel(booking.talker, booking).json()["refund"]["refund_id"]
    refund_create_task.apply(args=[refund_id]).get()
    events.deliver_new()

    payout = pay_out(stripe_emulator, booking.listener)

    # 30.00 refunded 15.00: the app gives back 1.50, the listener 13.50 and keeps 13.50.
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 1350)
    assert split_balances(booking)[f"listener:{booking.listener_id}:payable"] == 0
    assert_ledger_clean()


def test_a_booking_cancelled_while_its_payment_went_through_is_refunded_in_full(stripe_emulator, events):
    """The talker paid, then cancelled before Stripe's event reached us: Stripe refuses to cancel
    the PaymentIntent, so the whole payment is refunded instead."""
    from billing import payments as services
    from billing import stripe_gateway
    from billing.tasks import payment_intent_cancel_task

    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory().pk,
        scheduled_at=timezone.now() + timedelta(days=2),
    )
    payment = services.payment_intent_create(payment_id=booking.payment.pk)
    stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm,
        payment.stripe_payment_intent_id,
        params={"payment_method": "pm_card_visa"},
    )
    assert _cancel(booking.talker, booking).json()["refund"]["policy"] == "unpaid"

    payment_intent_cancel_task.apply(args=[payment.pk]).get()
    payment_intent_cancel_task.apply(args=[payment.pk]).get()
    refund = Refund.objects.get(payment=payment)
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()

    refund.refresh_from_db()
    booking.refresh_from_db()
    assert (refund.amount, refund.policy, refund.status) == (3000, "paid_after_cancel", Refund.Status.SUCCEEDED)
    # Fully refunded, the cancelled booking ends refunded (as any booking refunded in full).
    assert (booking.status, booking.cancelled_by_id) == (Booking.Status.REFUNDED, booking.talker_id)
    assert payment_of(booking).amount_refunded == 3000
    assert split_balances(booking)[f"listener:{booking.listener_id}:payable"] == 0
    assert_ledger_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_both_participants_cancelling_at_once_refund_once(stripe_emulator, celery_worker):
    import threading

    from django.db import connection

    from common.errors import DomainError

    booking = paid_booking(StripeEvents())
    start = threading.Barrier(2)
    outcomes = []

    def cancel(user):
        try:
            start.wait()
            outcomes.append(booking_services.booking_cancel(booking_id=booking.pk, user=user, reason="race").policy)
        except DomainError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel, args=(user,)) for user in (booking.talker, booking.listener)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) in (["invalid_state", "listener_cancelled"], ["invalid_state", "talker_early"])
    assert Refund.objects.filter(payment__booking=booking).count() == 1
    assert Refund.objects.get(payment__booking=booking).amount == 3000
