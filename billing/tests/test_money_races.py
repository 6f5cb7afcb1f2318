"""Issue 10's payment-side races, each against the emulator through the real SDK, each ending with
`ledger_check` clean and our amounts equal to Stripe's. Named after the item they prove."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import payments, stripe_gateway
from billing.models import Payment, Refund
from billing.refunds import refund_create_for_admin
from billing.tasks import refund_create_task
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    complete_session,
    connected_listener,
    paid_booking,
    payment_of,
)
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from common.errors import Conflict
from payouts.models import ListenerPayout
from web.tests.factories import ListenerFactory, TalkerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def _stripe_intent(payment: Payment) -> dict:
    return stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)


def _assert_totals_equal_stripe(payment: Payment) -> None:
    payment.refresh_from_db()
    intent = _stripe_intent(payment)
    charge = stripe_gateway.call(stripe_gateway.client().v1.charges.retrieve, payment.stripe_charge_id)
    assert (payment.amount, payment.currency) == (intent["amount_received"], intent["currency"])
    assert payment.amount_refunded == charge.amount_refunded


def _send_refunds(events: StripeEvents) -> None:
    for refund in Refund.objects.filter(status=Refund.Status.PENDING):
        refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()


def test_item5_early_cancel_after_a_partial_admin_refund_leaves_nothing_payable(events):
    # given a paid booking, a day and more ahead, partly refunded by an operator
    booking = paid_booking(events, hours_ahead=72)
    payment = payment_of(booking)
    refund_create_for_admin(payment_id=payment.pk, amount=1000, reason="goodwill", admin=UserFactory())
    _send_refunds(events)

    # when the talker cancels early (everything that remains comes back)
    cancellation = booking_services.booking_cancel(booking_id=booking.pk, user=booking.talker)
    _send_refunds(events)

    # then the remaining 20.00 is refunded and the listener's earning is not payable
    assert cancellation.refund_amount == 2000
    earning = ListenerPayout.objects.get(booking=booking)
    assert earning.status == ListenerPayout.Status.CANCELLED
    assert earning.payable_at is None
    booking.refresh_from_db()
    assert booking.status == Booking.Status.REFUNDED
    assert_ledger_clean()
    _assert_totals_equal_stripe(payment)


def test_item10_a_payment_that_succeeds_on_a_cancelled_booking_is_refunded_in_full_once(events):
    # given an unpaid booking cancelled while the broker was down (its PaymentIntent was never cancelled)
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory().pk,
        scheduled_at=timezone.now() + timedelta(days=3),
    )
    payment = payments.payment_intent_create(payment_id=booking.payment.pk)
    booking_services.booking_cancel(booking_id=booking.pk, user=booking.talker)
    payment.refresh_from_db()
    assert payment.intent_cancel_requested_at is not None  # recorded for the sweeper, not fire-and-forget

    # when the talker pays it anyway and Stripe's events arrive (twice)
    stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm,
        payment.stripe_payment_intent_id,
        params={"payment_method": "pm_card_visa"},
    )
    delivered = events.deliver_new()
    for event in delivered:
        from billing.tests.stripe_events import deliver

        deliver({**event, "id": event["id"] + "_dup"})

    # then the whole payment is refunded, once, and the booking stays cancelled
    refunds = list(Refund.objects.filter(payment=payment))
    assert [(r.amount, r.policy) for r in refunds] == [(3000, "paid_after_cancel")]
    _send_refunds(events)
    booking.refresh_from_db()
    assert booking.status in (Booking.Status.CANCELLED, Booking.Status.REFUNDED)
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.CANCELLED
    assert_ledger_clean()
    _assert_totals_equal_stripe(payment)
    assert payment.amount_refunded == 3000


def test_item12_a_dispute_seen_before_the_success_restores_the_paid_state_when_won(stripe_emulator, events):
    # given a paid booking whose success event we have not processed yet
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory().pk,
        scheduled_at=timezone.now() + timedelta(days=3),
    )
    payment = payments.payment_intent_create(payment_id=booking.payment.pk)
    intent = stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm,
        payment.stripe_payment_intent_id,
        params={"payment_method": "pm_card_visa"},
    )
    held_back = events.new()  # the payment's events, delivered only at the end
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    dispute_id = stripe_emulator.post(f"/_emulator/charges/{charge_id}/dispute")["id"]

    # when the dispute's events come first and it is won
    events.deliver_new()
    stripe_emulator.post(f"/_emulator/disputes/{dispute_id}/close", {"outcome": "won"})
    events.deliver_new()
    for event in held_back:
        from billing.tests.stripe_events import deliver

        deliver(event)

    # then the booking is confirmed (paid), not pending, and its earning is the listener's
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.PENDING
    assert_ledger_clean()
    _assert_totals_equal_stripe(payment)


def test_item13_a_partial_chargeback_lost_leaves_the_rest_payable(stripe_emulator, events):
    # given a completed session, partly charged back and lost
    booking = complete_session(paid_booking(events, listener=connected_listener(stripe_emulator)))
    charge_id = payment_of(booking).stripe_charge_id
    dispute_id = stripe_emulator.post(f"/_emulator/charges/{charge_id}/dispute", {"amount": 1000})["id"]
    events.deliver_new()
    stripe_emulator.post(f"/_emulator/disputes/{dispute_id}/close", {"outcome": "lost"})
    events.deliver_new()

    # then the booking is back to completed (payouts pay completed sessions) with the rest of the earning
    booking.refresh_from_db()
    assert booking.status == Booking.Status.COMPLETED
    earning = ListenerPayout.objects.get(booking=booking)
    assert earning.status == ListenerPayout.Status.PENDING
    assert earning.net_amount == 2700 - 900
    from payouts.selectors import earnings_payable

    assert earnings_payable(schedule="weekly", cutoff=timezone.now() + timedelta(days=1)).filter(pk=earning.pk)
    assert_ledger_clean()


def test_item16_the_intent_parameters_do_not_change_when_the_package_is_renamed(stripe_emulator):
    # given a booking whose PaymentIntent was created on Stripe but our save was lost
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory(name="Twenty minutes").pk,
        scheduled_at=timezone.now() + timedelta(days=3),
    )
    description = payments._intent_description(booking)
    payments.payment_intent_create(payment_id=booking.payment.pk)
    first_intent = payment_of(booking).stripe_payment_intent_id
    Payment.objects.filter(pk=booking.payment.pk).update(
        stripe_payment_intent_id=None, status=Payment.Status.AWAITING_INTENT
    )

    # when an admin renames the package and the worker retries
    booking.package.name = "Short chat"
    booking.package.save()
    payment = payments.payment_intent_create(payment_id=booking.payment.pk)

    # then the same key with the same parameters returns the same intent
    assert payment.stripe_payment_intent_id == first_intent
    assert _stripe_intent(payment)["description"] == description
    assert "Short chat" not in description and "Twenty" not in description


def test_item17_a_disputed_payment_cannot_be_cancelled_for_a_refund_stripe_would_refuse(stripe_emulator, events):
    # given a paid booking whose dispute was won (the booking is confirmed again)
    booking = paid_booking(events, hours_ahead=72)
    dispute_id = stripe_emulator.post(f"/_emulator/charges/{payment_of(booking).stripe_charge_id}/dispute")["id"]
    events.deliver_new()
    stripe_emulator.post(f"/_emulator/disputes/{dispute_id}/close", {"outcome": "won"})
    events.deliver_new()
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED

    # when the talker cancels, no refund is promised: the answer says why
    with pytest.raises(Conflict) as refused:
        booking_services.booking_cancel(booking_id=booking.pk, user=booking.talker)
    assert refused.value.code == "disputed"
    assert not Refund.objects.filter(payment__booking=booking).exists()
    assert_ledger_clean()


def test_item15_one_currency_end_to_end_with_minor_units_from_its_exponent(stripe_emulator, settings):
    from billing import money

    # a zero-decimal currency has no cents; a two-decimal one has
    assert money.to_cents("500", "jpy") == 500
    assert money.format_amount(500, "jpy") == "500"
    assert money.to_cents("30.00", "eur") == 3000
    with pytest.raises(money.MoneyError):
        money.to_cents("500.50", "jpy")

    # given the platform runs in eur, a booking is charged in eur, not usd
    settings.STRIPE_CURRENCY = "eur"
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=ListenerFactory().pk,
        package_id=PackageFactory(price="50.00").pk,
        scheduled_at=timezone.now() + timedelta(days=3),
    )
    payment = payments.payment_intent_create(payment_id=booking.payment.pk)
    assert (booking.currency, payment.currency) == ("eur", "eur")
    assert (payment.amount, payment.app_fee, payment.listener_amount) == (5000, 500, 4500)
    intent = _stripe_intent(payment)
    assert (intent["amount"], intent["currency"]) == (5000, "eur")


def test_item11_a_refund_that_fails_gives_back_a_state_that_matches_where_the_money_is(stripe_emulator, events):
    # given a booking cancelled early and refunded in full, confirmed by Stripe
    booking = paid_booking(events, hours_ahead=72)
    booking_services.booking_cancel(booking_id=booking.pk, user=booking.talker)
    _send_refunds(events)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.REFUNDED
    refund = Refund.objects.get(payment__booking=booking)

    # when the refund fails on Stripe afterwards (the card was closed)
    stripe_emulator.post(
        f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {"failure_reason": "expired_or_canceled_card"}
    )
    events.deliver_new()

    # then the money is ours again: the booking is cancelled (not refunded), the refund failed, and the
    # listener's share is held for an operator instead of lying pending with no payable date
    booking.refresh_from_db()
    refund.refresh_from_db()
    earning = ListenerPayout.objects.get(booking=booking)
    assert booking.status == Booking.Status.CANCELLED
    assert refund.status == Refund.Status.FAILED
    assert (earning.status, earning.net_amount) == (ListenerPayout.Status.HELD, 2700)
    assert_ledger_clean()
    _assert_totals_equal_stripe(booking.payment)
